//! strom-raft (being written).
