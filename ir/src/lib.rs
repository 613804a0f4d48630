//! The virtual-register function IR of jitforge.
