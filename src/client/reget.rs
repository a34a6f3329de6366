//! What each thread fetched last from the clients it used most recently,
//! for `reget` (the original's `DC_CTX_reget_session`, answered per
//! thread).

use std::cell::RefCell;

/// Clients whose last fetched session a thread remembers for `reget`.
const REGET_SLOTS: usize = 4;

/// What one thread fetched last from each of the clients it used most
/// recently (most recent first): (client serial, id, data).
type LastGets = Vec<(u64, Vec<u8>, Vec<u8>)>;

/// The serial of a slot whose memory was forgotten (serials start at 1);
/// its buffers are kept for the next `get`.
const FORGOTTEN: u64 = 0;

thread_local! {
    static LAST_GET: RefCell<LastGets> = const { RefCell::new(Vec::new()) };
}

/// Remembers that the client `serial` fetched `data` for `id` on this
/// thread.
pub(super) fn remember(serial: u64, id: &[u8], data: &[u8]) {
    // The memory is unavailable only while the thread is exiting.
    let _ = LAST_GET.try_with(|l| {
        let mut l = l.borrow_mut();
        // Reuse a forgotten slot's buffers (this client's own, most
        // likely), else those of the least recent client.
        let reuse = l
            .iter()
            .position(|(serial, _, _)| *serial == FORGOTTEN)
            .or_else(|| (l.len() >= REGET_SLOTS).then(|| l.len() - 1));
        let (_, mut last_id, mut last_data) =
            reuse.map_or((FORGOTTEN, Vec::new(), Vec::new()), |i| l.remove(i));
        last_id.clear();
        last_id.extend_from_slice(id);
        last_data.clear();
        last_data.extend_from_slice(data);
        l.insert(0, (serial, last_id, last_data));
    });
}

/// What the client `serial` last fetched on this thread, if it was for
/// `id`.
pub(super) fn recall(serial: u64, id: &[u8]) -> Option<Vec<u8>> {
    LAST_GET
        .try_with(|l| {
            l.borrow()
                .iter()
                .find(|(s, _, _)| *s == serial)
                .filter(|(_, last_id, _)| last_id == id)
                .map(|(_, _, data)| data.clone())
        })
        .ok()
        .flatten()
}

/// Forgets what the client `serial` fetched on this thread.
pub(super) fn forget(serial: u64) {
    // The memory is unavailable only while the thread is exiting.
    let _ = LAST_GET.try_with(|l| {
        for slot in l.borrow_mut().iter_mut() {
            if slot.0 == serial {
                slot.0 = FORGOTTEN;
            }
        }
    });
}
