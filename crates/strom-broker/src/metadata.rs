//! The broker's seam to the metadata quorum: read the committed image, watch it change, and
//! submit controller requests that are answered once their records commit.
//!
//! [`LocalMetadata`] is an in-process quorum of one with no log of its own (tests, and a
//! broker that keeps no metadata across restarts); the `strom` binary plugs in the Raft node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use strom_meta::{
    ApiError, Controller, ControllerConfig, ControllerReply, ControllerRequest, MetadataImage,
};
use tokio::sync::watch;

/// Why a controller request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The controller refused the whole request (Kafka error code inside).
    #[error("controller refused the request: {0}")]
    Refused(ApiError),
    /// The quorum could not be reached or timed out; the client should retry.
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
}

/// A boxed future of a controller reply.
pub type SubmitFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ControllerReply, MetadataError>> + Send + 'a>>;

/// A boxed future of an image.
pub type ImageFuture<'a> =
    Pin<Box<dyn Future<Output = Result<MetadataImage, MetadataError>> + Send + 'a>>;

/// A boxed future of the metadata quorum's description.
pub type QuorumFuture<'a> = Pin<
    Box<
        dyn Future<Output = Result<strom_raft::wire::QuorumDescription, MetadataError>> + Send + 'a,
    >,
>;

/// A boxed future of a membership change's outcome.
pub type MembershipFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), strom_raft::wire::MembershipError>> + Send + 'a>>;

/// What the broker needs from the metadata quorum.
pub trait MetadataPort: Send + Sync + 'static {
    /// The latest committed image.
    fn image(&self) -> MetadataImage;
    /// Notified whenever a newer image is committed.
    fn watch(&self) -> watch::Receiver<MetadataImage>;
    /// Submits a request; resolves once its records are committed and applied.
    fn submit(&self, request: ControllerRequest) -> SubmitFuture<'_>;
    /// Resolves, once this node has applied everything committed when it was called, to
    /// the image from then on. Start-up waits for it before deciding that a directory on
    /// disk belongs to no topic: a node's image can start behind what its broker wrote
    /// (its commit hint is not fsynced, or its metadata log was rebuilt). The default suits
    /// an in-process controller, whose image is always complete.
    fn caught_up_image(&self) -> ImageFuture<'_> {
        let image = self.image();
        Box::pin(async move { Ok(image) })
    }
    /// This node's view of the metadata quorum (metrics and readiness); `None` where there
    /// is no quorum (an in-process controller).
    fn quorum_status(&self) -> Option<strom_raft::wire::QuorumStatus> {
        None
    }
    /// The quorum as its leader describes it (DescribeQuorum, asked of the leader as Kafka
    /// forwards it to the active controller). An in-process controller has no quorum.
    fn describe_quorum(&self) -> QuorumFuture<'_> {
        Box::pin(async {
            Err(MetadataError::Unavailable(
                "no metadata quorum: the controller runs in this process".into(),
            ))
        })
    }
    /// Changes the quorum's voters (AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter), made
    /// by its leader. An in-process controller has no quorum to change.
    fn change_quorum(&self, _change: strom_raft::wire::MembershipChange) -> MembershipFuture<'_> {
        Box::pin(async {
            Err(strom_raft::wire::MembershipError::Refused(
                "no metadata quorum: the controller runs in this process".into(),
            ))
        })
    }
}

/// Wall-clock milliseconds since the epoch (strom-records' clock).
pub use strom_records::now_ms;

/// A single in-process controller: requests are validated and applied under one mutex, so
/// replies are released only after the new image is published (the same order as a quorum).
#[derive(Debug)]
pub struct LocalMetadata {
    state: Mutex<(Controller, MetadataImage)>,
    images: watch::Sender<MetadataImage>,
}

impl LocalMetadata {
    /// An empty cluster with this controller config.
    pub fn new(config: ControllerConfig) -> LocalMetadata {
        let seed = u64::try_from(now_ms()).unwrap_or(0) ^ u64::from(std::process::id());
        let config = ControllerConfig {
            topic_id_seed: seed,
            ..config
        };
        let image = MetadataImage::default();
        let (images, _) = watch::channel(image.clone());
        LocalMetadata {
            state: Mutex::new((Controller::new(config), image)),
            images,
        }
    }

    /// Replaces the controller with a fresh one over the same image, as when the quorum
    /// restarts: soft state such as broker sessions is forgotten.
    pub fn restart_controller(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let config = state.0.config().clone();
        state.0 = Controller::new(config);
    }

    fn handle(&self, request: ControllerRequest) -> Result<ControllerReply, MetadataError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (controller, image) = &mut *state;
        let (records, reply) = controller
            .handle(image, request, now_ms())
            .map_err(|error| MetadataError::Refused(error.0))?;
        if !records.is_empty() {
            let (next, _delta) = image
                .apply(&records)
                .map_err(|error| MetadataError::Unavailable(error.to_string()))?;
            *image = next.clone();
            self.images.send_replace(next);
        }
        Ok(reply)
    }
}

impl MetadataPort for LocalMetadata {
    fn image(&self) -> MetadataImage {
        self.images.borrow().clone()
    }

    fn watch(&self) -> watch::Receiver<MetadataImage> {
        self.images.subscribe()
    }

    fn submit(&self, request: ControllerRequest) -> SubmitFuture<'_> {
        let result = self.handle(request);
        Box::pin(async move { result })
    }
}
