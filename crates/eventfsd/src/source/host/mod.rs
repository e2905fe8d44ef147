//! The host source: a private, policy-filtered tracefs instance of the host per guest.
//!
//! At start-up eventfsd finds (or mounts) the host tracefs and serves the host's events from an
//! eventfs-core catalog image taken once per boot and policy and shared by every daemon
//! ([`shared_image`]: metadata and the immutable `format`s come from memory, with no host fd
//! per node). Its private `instances/<name>` is made when the guest first opens a file
//! ([`own_instance`]): a guest that only lists the tree costs the host no instance. It hides what the policy hides and forwards control
//! files to the instance ([`forward`]). While the guest looks, events added and removed on
//! the host are brought in ([`change_watch`], [`rescan`]). On exit the instance is removed
//! (and a tracefs we mounted is unmounted).

use eventfs_core::control::ControlFiles;
use eventfs_core::{Tree, TreeConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod buffers;
pub mod change_watch;
mod error;
pub mod event_set;
pub mod forward;
pub mod guard;
pub mod guest_instances;
pub mod host_catalog;
pub mod hostio;
pub mod instance;
pub mod limits;
mod own_instance;
pub mod per_cpu;
pub mod policy;
pub mod rescan;
pub mod scope;
pub mod shared_image;

use super::Source;
use crate::stats::SourceFigure;

pub use error::HostError;
pub use forward::{ForwardLimits, HostControl, HostView};
pub use host_catalog::{
    build_tree, dynamic_event_names, filtered_catalog, is_dynamic, root_files_mask, EventNames,
};
pub use instance::{Instance, Tracefs};
pub use own_instance::OwnInstanceAt;
pub use policy::{Policy, PolicyError};

/// How to run the host source.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The host tracefs (default: found in /proc/mounts, or mounted privately).
    pub tracefs: Option<PathBuf>,
    /// Instance name (default `eventfsd-<pid>`).
    pub instance: Option<String>,
    /// Policy file (default: the default policy).
    pub policy: Option<PathBuf>,
    /// Remove leftover `eventfsd-<pid>` instances of dead daemons.
    pub reclaim_stale: bool,
    /// How often, at most, the host's events are checked for changes while the guest looks
    /// (zero: never).
    pub rescan_interval: Duration,
    /// Forwarding tunables.
    pub limits: ForwardLimits,
    /// Pin the instance to this process tree (overrides the policy's `scope.pid`).
    pub scope_pid: Option<u32>,
    /// The tasks of the scope, when the caller read them already (before a sandbox hides
    /// `/proc`); otherwise they are read from `/proc` at start.
    pub scope_tasks: Option<std::collections::BTreeSet<u32>>,
    /// Set when the daemon runs sandboxed, as pid 1 of its own pid namespace: its parent's pid
    /// (outside), which names the default instance and which other daemons can check. The
    /// parent, in the host's pid namespace, has then handled stale instances already (see
    /// [`handle_stale_instances`]); from inside, every other daemon would look dead.
    pub instance_pid: Option<u32>,
    /// The policy, loaded before the sandbox hid `policy`'s path (which then only names it).
    pub loaded_policy: Option<Policy>,
    /// The catalog image to serve, obtained before the sandbox ([`shared_image::obtain`]).
    pub shared_image: Option<shared_image::SharedImage>,
    /// Without `shared_image`: where to find or publish the shared snapshot; `None` walks
    /// this daemon's own instance instead (tests with fake trees).
    pub snapshot_store: Option<PathBuf>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            tracefs: None,
            instance: None,
            policy: None,
            reclaim_stale: false,
            rescan_interval: Duration::from_secs(1),
            limits: ForwardLimits::default(),
            scope_pid: None,
            scope_tasks: None,
            instance_pid: None,
            loaded_policy: None,
            shared_image: None,
            snapshot_store: None,
        }
    }
}

/// Reports leftover `eventfsd-<pid>` instances whose daemon is gone, and with `reclaim` removes
/// them. Must run in the host's pid namespace, where those pids mean something.
pub fn handle_stale_instances(tracefs: &Tracefs, reclaim: bool) {
    for stale in tracefs.stale_instances() {
        let dir = tracefs.root.join("instances").join(&stale);
        if reclaim {
            match instance::remove_instance_dir(&dir) {
                Ok(()) => log::warn!("reclaimed stale instance {}", dir.display()),
                Err(e) => log::warn!("cannot reclaim stale instance {}: {e}", dir.display()),
            }
        } else {
            log::warn!(
                "stale instance {} (its daemon is gone); --reclaim-stale-instances removes it",
                dir.display()
            );
        }
    }
}

/// A running host source: the instance, the tree served from it and the control forwarding
/// (which also watches the host for added and removed events). Dropping it (or
/// [`HostSource::shutdown`]) removes the instance.
pub struct HostSource {
    tree: Arc<Tree>,
    control: Arc<HostControl>,
    instance_dir: PathBuf,
    /// What [`Source::shutdown`] stops and removes, in this order.
    running: Mutex<Option<Running>>,
}

/// The parts of a host source that shutdown takes down.
struct Running {
    /// Made at start (without the shared snapshot); otherwise the control makes it lazily.
    instance: Option<Instance>,
    /// Kept until the instance is gone: dropping it unmounts a tracefs we mounted.
    _tracefs: Tracefs,
}

impl HostSource {
    /// Finds the tracefs, reports (and with `reclaim_stale` removes) leftover instances,
    /// creates ours and builds the tree from it.
    pub fn start(options: &HostOptions, config: TreeConfig) -> Result<HostSource, HostError> {
        let policy = match (&options.loaded_policy, &options.policy) {
            (Some(policy), _) => policy.clone(),
            (None, Some(path)) => Policy::load(path)?,
            (None, None) => Policy::default(),
        };
        let tracefs = Tracefs::find(options.tracefs.as_deref())?;
        if options.instance_pid.is_none() {
            handle_stale_instances(&tracefs, options.reclaim_stale);
        }
        let pid = options.instance_pid.unwrap_or_else(std::process::id);
        let name = options
            .instance
            .clone()
            .unwrap_or_else(|| format!("{}{pid}", instance::INSTANCE_PREFIX));
        let shared = match (&options.shared_image, &options.snapshot_store) {
            (Some(shared), _) => Some(shared.clone()),
            (None, Some(store)) => Some(shared_image::obtain(&tracefs, &policy, store, pid)?),
            (None, None) => None,
        };
        // With the shared snapshot, nothing of the instance is needed to build the tree: it
        // is made on the guest's first open (OwnInstanceAt::FirstOpen). Without it, the tree is
        // walked from the instance, which must exist now.
        let instance = match shared {
            Some(_) => None,
            None => Some(Instance::create(&tracefs, &name)?),
        };
        let instance_dir = tracefs.root.join("instances").join(&name);
        if instance.is_none() {
            instance::check_instance_name(&name)?;
            if instance_dir.exists() {
                return Err(HostError::InstanceExists(
                    instance_dir.display().to_string(),
                ));
            }
        }
        let (tree, view, dynamic) = match &shared {
            Some(shared) => {
                // The snapshot's events now; the first reconcile below adds what is new and
                // decides what is hidden.
                let tree = Tree::from_image(shared.image.clone(), config)?;
                tree.set_root_files(root_files_mask(None, &tracefs.root, &policy));
                let dynamic_names = dynamic_event_names(&tracefs.root);
                let dynamic = rescan::host_events(&tracefs.root)
                    .map_err(|source| HostError::Io {
                        what: format!("read {}/available_events", tracefs.root.display()),
                        source,
                    })?
                    .into_iter()
                    .filter(|(system, event)| is_dynamic(&dynamic_names, system, event))
                    .collect();
                (tree, HostView::default(), dynamic)
            }
            None => build_tree(&instance_dir, &tracefs.root, &policy, config)?,
        };
        let policy_scope = policy.scope_pid;
        let policy = Arc::new(policy);
        let at = match instance {
            Some(_) => OwnInstanceAt::Existing(&instance_dir),
            None => OwnInstanceAt::FirstOpen(&instance_dir),
        };
        let control = HostControl::new(at, &tracefs.root, policy, view, options.limits).map_err(
            |source| HostError::Io {
                what: format!("open {}", instance_dir.display()),
                source,
            },
        )?;
        let scope_pid = options
            .scope_pid
            .or((policy_scope != 0).then_some(policy_scope));
        if let Some(root) = scope_pid {
            let initial = match &options.scope_tasks {
                Some(tasks) => tasks.clone(),
                None => scope::process_tree(root).map_err(|source| HostError::Io {
                    what: format!("scope: process tree of {root}"),
                    source,
                })?,
            };
            control
                .set_scope(scope::Scope { root, initial })
                .map_err(|e| HostError::Io {
                    what: format!("scope: pin {} to {root}", instance_dir.display()),
                    source: std::io::Error::other(e.to_string()),
                })?;
        }
        *control
            .dynamic_names
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = dynamic;
        if shared.is_some() {
            let report =
                rescan::reconcile(&tree, &control, true).map_err(|source| HostError::Io {
                    what: "reconcile the shared snapshot with the host".into(),
                    source,
                })?;
            if !report.added.is_empty() || !report.removed.is_empty() {
                log::info!(
                    "host events since the snapshot: {} added, {} removed",
                    report.added.len(),
                    report.removed.len()
                );
            }
        }
        let tree = Arc::new(tree);
        let control = Arc::new(control);
        if !options.rescan_interval.is_zero() {
            control.watch_changes(change_watch::ChangeWatch::new(
                control.top_path(),
                options.rescan_interval,
                rescan::rescan,
            ));
        }
        Ok(HostSource {
            tree,
            control,
            instance_dir,
            running: Mutex::new(Some(Running {
                instance,
                _tracefs: tracefs,
            })),
        })
    }

    /// The forwarding layer itself (fd counts, rescans in tests).
    pub fn host_control(&self) -> &Arc<HostControl> {
        &self.control
    }

    /// `<tracefs>/instances/<name>` (made on the guest's first open when the source serves
    /// the shared snapshot: see [`HostControl::own_instance_exists`]).
    pub fn instance_dir(&self) -> &Path {
        &self.instance_dir
    }
}

impl Source for HostSource {
    fn tree(&self) -> &Arc<Tree> {
        &self.tree
    }

    fn control(&self) -> Arc<dyn ControlFiles> {
        self.control.clone()
    }

    fn figures(&self) -> Vec<SourceFigure> {
        self.control.figures()
    }

    fn listings_are_frozen(&self) -> bool {
        // The rescan adds and removes events behind the guest's back.
        false
    }

    fn describe(&self) -> String {
        let (systems, events, dirs, files) = self.tree.counts();
        format!(
            "host instance {}: {systems} systems, {events} events, {dirs} directories, {files} files",
            self.instance_dir.display()
        )
    }

    fn wake_readers(&self) {
        self.control.shutdown();
    }

    /// Closes every host file and removes the instance (and unmounts a
    /// tracefs we mounted). Idempotent; also done on drop.
    fn shutdown(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.control.shutdown();
        if let Some(mut running) = running {
            self.control.shutdown();
            self.control.remove_guest_instances();
            match running.instance.as_mut() {
                Some(instance) => {
                    let _ = instance.remove();
                }
                None => self.control.remove_own_instance(),
            }
        }
    }
}

impl Drop for HostSource {
    fn drop(&mut self) {
        self.shutdown();
    }
}
