//! The control plane's listener (SPEC §4): the unix socket's hygiene (a
//! stale file is replaced, a live one refused, mode 0600) and its lifetime.
//! What each request means is `api`'s business.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::api::{self, Ctx, Plane};
use crate::http::server::{self, Limits, Request, ServerHandle};
use crate::metrics::RequestCounter;
use crate::msg::{Msg, Pages};

/// Bind the control socket: refuse if another process answers on it,
/// replace a stale file, and make it owner-only before serving.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "cannot listen on control socket {}: another process is already listening there",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale control socket {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on control socket {}: {e}", path.display()))?;
    // umask is process-wide and other threads may be spawning: chmod after bind instead.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        format!(
            "cannot set the mode of control socket {}: {e}",
            path.display()
        )
    })?;
    Ok(listener)
}

/// A running control server; dropping it stops it and removes the socket file.
pub struct Control {
    path: PathBuf,
    handle: Option<ServerHandle>,
}

impl Control {
    /// `requests` counts every answer by (status, route); the telemetry
    /// server reads it when it serves `/metrics`. A counter bumped under an
    /// uncontended lock costs the request nothing, where a message would
    /// wake the loop for every request. `pages` holds what the loop has
    /// rendered for `/v3/status`.
    /// The socket is bound and refuses nothing, but requests wait unanswered
    /// until `serve`.
    pub fn prepare(
        path: &Path,
        config_path: &Path,
        tx: Sender<Msg>,
        requests: Arc<Mutex<RequestCounter>>,
        pages: Arc<Pages>,
    ) -> Result<Control, String> {
        let listener = bind(path)?;
        let ctx = Ctx {
            plane: Plane::Control,
            tx,
            config_path: config_path.to_path_buf(),
            requests,
            pages,
            followers: Arc::default(),
        };
        let handler = Arc::new(move |req: &Request| api::handle(&ctx, req));
        let handle = server::prepare(listener, handler, Limits::default())
            .map_err(|e| format!("cannot serve control socket {}: {e}", path.display()))?;
        Ok(Control {
            path: path.to_path_buf(),
            handle: Some(handle),
        })
    }
}

impl Control {
    /// Starts answering (once; later calls do nothing).
    pub fn serve(&mut self) -> Result<(), String> {
        match self.handle.as_mut().map(ServerHandle::open) {
            Some(Err(e)) => Err(format!(
                "cannot serve control socket {}: {e}",
                self.path.display()
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // The server stops when its handle drops, after this body runs:
        // stop it first so no request is accepted on a path being removed.
        if let Some(h) = self.handle.take() {
            h.stop();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
