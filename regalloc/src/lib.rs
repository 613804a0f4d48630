//! Register allocation for jitforge.
