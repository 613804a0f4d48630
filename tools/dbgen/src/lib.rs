//! Instruction-database generator for jitforge.
