//! The mount's write-behind layer: the changes it acknowledged to the
//! kernel before the masters applied them, and how each kind is sent.
//! Creates ride on their file's first commit (create_behind.rs,
//! held_creates.rs); unlinks are queued and pipelined (unlink_behind.rs,
//! unlink_queue.rs); attribute changes of a held file ride on its commit
//! (setattr_behind.rs). Open files never reach into this: a commit asks
//! for its rider through the `CommitRider` trait (file.rs).

use crate::held_creates::Creates;
use crate::unlink_queue::{UnlinkBehind, UnlinkQueue};
use parking_lot::Mutex;
use std::sync::Arc;
use tessera_client::write_behind::WriteBehind;

pub struct Behind {
    /// Which unlinks are acknowledged at once and sent behind, pipelined;
    /// the others wait for their commit.
    pub unlink: UnlinkBehind,
    pub(crate) unlinks: Mutex<UnlinkQueue>,
    /// Notified when the unlink queue has drained.
    pub(crate) unlinks_drained: tokio::sync::Notify,
    /// Creates are acknowledged at once and sent with the file's first
    /// commit; otherwise each waits for its own.
    pub create: bool,
    pub(crate) creates: Arc<Creates>,
    /// chmod/chown/utimens of a file with unflushed writes ride on its
    /// commit (setattr_behind.rs); otherwise each is sent at once.
    pub attrs: bool,
}

impl Behind {
    pub fn new(order: Arc<WriteBehind>) -> Behind {
        Behind {
            unlink: UnlinkBehind::Exclusive,
            unlinks: Default::default(),
            unlinks_drained: Default::default(),
            create: true,
            creates: Arc::new(Creates::new(order)),
            attrs: true,
        }
    }
}
