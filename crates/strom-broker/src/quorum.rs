//! The broker's seam to this node's metadata quorum member: the committed image, its
//! changes, and controller requests submitted through the Raft node (forwarded to the
//! leader when this node is not it).

use std::sync::Arc;

use crate::metadata::{
    ImageFuture, MembershipFuture, MetadataError, MetadataPort, QuorumFuture, SubmitFuture,
};
use strom_meta::{ControllerRequest, MetadataImage};
use strom_raft::metadata::MetadataNode;
use tokio::sync::watch;

/// [`MetadataPort`] over a [`MetadataNode`].
pub struct QuorumMetadata {
    node: MetadataNode,
    images: watch::Sender<MetadataImage>,
}

impl QuorumMetadata {
    /// Wraps `node`; a task forwards each applied image to the broker's watchers.
    pub fn new(node: MetadataNode) -> Arc<QuorumMetadata> {
        let (images, _) = watch::channel(node.state().state);
        let port = Arc::new(QuorumMetadata { node, images });
        let mut applied = port.node.watch_state();
        let forward = Arc::clone(&port);
        tokio::spawn(async move {
            while applied.changed().await.is_ok() {
                let image = applied.borrow_and_update().state.clone();
                forward.images.send_replace(image);
            }
        });
        port
    }
}

impl MetadataPort for QuorumMetadata {
    fn image(&self) -> MetadataImage {
        // Read from the node itself: a reply is released only after its entry is applied
        // there, so a handler that just got a reply sees its own change.
        self.node.state().state
    }

    fn watch(&self) -> watch::Receiver<MetadataImage> {
        self.images.subscribe()
    }

    fn quorum_status(&self) -> Option<strom_raft::wire::QuorumStatus> {
        Some(self.node.quorum_status())
    }

    fn caught_up_image(&self) -> ImageFuture<'_> {
        Box::pin(async move {
            // A linearizable read: the leader's applied index once everything committed so
            // far is applied there.
            let (index, _) = self
                .node
                .read_state()
                .await
                .map_err(|error| MetadataError::Unavailable(error.to_string()))?;
            let mut applied = self.node.watch_state();
            loop {
                {
                    let current = applied.borrow_and_update();
                    if current.last_applied.map(|id| id.index) >= index {
                        return Ok(current.state.clone());
                    }
                }
                applied
                    .changed()
                    .await
                    .map_err(|_| MetadataError::Unavailable("the metadata node stopped".into()))?;
            }
        })
    }

    fn describe_quorum(&self) -> QuorumFuture<'_> {
        Box::pin(async move {
            self.node
                .describe_quorum()
                .await
                .map_err(|error| MetadataError::Unavailable(error.to_string()))
        })
    }

    fn change_quorum(&self, change: strom_raft::wire::MembershipChange) -> MembershipFuture<'_> {
        Box::pin(self.node.change_membership(change))
    }

    fn submit(&self, request: ControllerRequest) -> SubmitFuture<'_> {
        Box::pin(async move {
            match self.node.submit(request).await {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(error)) => Err(MetadataError::Refused(error)),
                Err(error) => Err(MetadataError::Unavailable(error.to_string())),
            }
        })
    }
}
