//! Intel-syntax text: parser and formatter (placeholder, being written).
