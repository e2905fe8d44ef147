//! Event sources: what stands behind the tree's control files.
//!
//! - [`catalog`]: a simulated kernel over an event catalog (the embedded one by default);
//! - [`host`]: the host's live tracefs through a private, policy-filtered instance.
//!
//! Both give the same [`Source`]: the rest of the daemon (the FUSE adapter, the transports,
//! the stats) never knows which one runs.

use std::sync::Arc;

use crate::stats::SourceFigure;

use eventfs_core::control::ControlFiles;
use eventfs_core::Tree;

pub mod catalog;
pub mod host;

/// A running event source.
pub trait Source: Send + Sync {
    /// The tree to serve.
    fn tree(&self) -> &Arc<Tree>;
    /// The semantics of every non-static file of the tree.
    fn control(&self) -> Arc<dyn ControlFiles>;
    /// The source's own counters and gauges for the stats file.
    fn figures(&self) -> Vec<SourceFigure> {
        Vec::new()
    }
    /// True when directory listings change only through the guest's own requests, so the
    /// guest may cache them for good.
    fn listings_are_frozen(&self) -> bool;
    /// One line for the start-up log: what is served, from where.
    fn describe(&self) -> String;
    /// Wakes blocked readers (`trace_pipe`) so the transport's workers can finish.
    fn wake_readers(&self);
    /// Stops the source's threads and releases what it holds on the host. Idempotent.
    fn shutdown(&self);
}
