//! jitforge: x86/x86-64 machine-code generation.
