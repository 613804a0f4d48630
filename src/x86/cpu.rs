//! Host CPU feature detection (placeholder, being written).
