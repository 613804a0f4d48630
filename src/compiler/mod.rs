//! The Compiler: virtual registers, functions and calls on top of the IR, the register allocator and the Builder (being written).
