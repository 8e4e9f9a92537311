//! strom-meta (being written).
