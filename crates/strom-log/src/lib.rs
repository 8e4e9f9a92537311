//! strom-log (being written).
