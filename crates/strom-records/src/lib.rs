//! strom-records (being written).
