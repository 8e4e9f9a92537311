//! strom-protocol (being written).
