//! The accept loop the controller's servers (control socket, metrics) share: a bounded number
//! of connections at a time, the rest waiting in the listen backlog, and accept errors (out of
//! descriptors, say) logged once and retried, never fatal.

use std::{future::Future, io, sync::Arc, time::Duration};

use tokio::sync::Semaphore;
use tracing::{info, warn};

/// How long the loop waits after an accept error before it tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Accepts connections with `accept` forever and runs `handle` on each in a task of its own,
/// at most `max` at a time. `server` names the server in the log.
pub async fn accept_loop<S, Accept, Accepted, Handle, Handled>(
    server: &'static str,
    max: usize,
    mut accept: Accept,
    handle: Handle,
) where
    Accept: FnMut() -> Accepted,
    Accepted: Future<Output = io::Result<S>>,
    Handle: Fn(S) -> Handled,
    Handled: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    let mut failing = false;
    loop {
        // A slot first: while all are taken, connections wait in the backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match accept().await {
            Ok(connection) => {
                if failing {
                    info!(server, "accepting again");
                    failing = false;
                }
                let work = handle(connection);
                tokio::spawn(async move {
                    let _slot = slot;
                    work.await;
                });
            }
            Err(err) => {
                if !failing {
                    warn!(server, %err, "cannot accept; retrying");
                    failing = true;
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}
