//! See the crate documentation; filled in by the share-group work.
