//! Executable memory for JIT code (owned by the JIT-memory work; placeholder).
