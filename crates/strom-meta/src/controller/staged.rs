//! Records accumulated while handling one request.
//!
//! Most requests touch each item (topic, resource) once, so their records are collected and
//! applied once at the end, to a scratch image, to prove they apply: applying per item
//! would copy the image per item. Requests whose later items must see earlier ones (ISR
//! changes, session expiry) apply each item as it is added.

use crate::controller::errors::{ApiError, ControllerError, ErrorCode};
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

pub(crate) struct Staged {
    /// The request's starting image, plus items added with [`Staged::push_applied`].
    pub image: MetadataImage,
    records: Vec<MetadataRecord>,
    /// Records from `records[applied..]` are not yet in `image`.
    applied: usize,
}

impl Staged {
    pub fn new(image: &MetadataImage) -> Self {
        Staged {
            image: image.clone(),
            records: Vec::new(),
            applied: 0,
        }
    }

    /// Adds the records of one item, checked when the request finishes.
    pub fn push(&mut self, records: Vec<MetadataRecord>) {
        self.records.extend(records);
    }

    /// Adds the records of one item and applies them now, so that later items see them.
    /// On failure (a controller bug) the item is refused and nothing from it is kept.
    pub fn push_applied(&mut self, records: Vec<MetadataRecord>) -> Result<(), ApiError> {
        self.apply_pending()?;
        let (image, _) = self.image.apply(&records).map_err(internal)?;
        self.image = image;
        self.records.extend(records);
        self.applied = self.records.len();
        Ok(())
    }

    fn apply_pending(&mut self) -> Result<(), ApiError> {
        if let Some(pending) = self.records.get(self.applied..).filter(|p| !p.is_empty()) {
            self.image = self.image.apply(pending).map_err(internal)?.0;
            self.applied = self.records.len();
        }
        Ok(())
    }

    /// The records to commit (none when the request only validates), after proving that
    /// they apply. A failure is a controller bug and refuses the whole request.
    pub fn finish(mut self, validate_only: bool) -> Result<Vec<MetadataRecord>, ControllerError> {
        self.apply_pending()?;
        Ok(if validate_only {
            Vec::new()
        } else {
            self.records
        })
    }
}

fn internal(e: crate::error::MetaError) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownServerError,
        format!("internal error: {e}"),
    )
}
