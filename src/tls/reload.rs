use crate::sys::process::SignalSet;
use std::io;
use std::thread::JoinHandle;

/// SIGHUP, taken by a thread of its own to reload the credentials.
#[derive(Debug)]
pub struct ReloadSignal(SignalSet);

impl ReloadSignal {
    /// Blocks SIGHUP in the calling thread and every thread it starts
    /// afterwards. Call it before starting any thread.
    pub fn block() -> io::Result<ReloadSignal> {
        SignalSet::block(&[libc::SIGHUP]).map(ReloadSignal)
    }

    /// Starts a thread that runs `on_hup` at every SIGHUP.
    pub fn spawn_waiter(
        self,
        mut on_hup: impl FnMut() + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("reload".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                while self.0.wait().is_ok() {
                    on_hup();
                }
            })
    }
}
