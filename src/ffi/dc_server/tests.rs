//! A client names its server and its server lists it; both links must stay
//! valid across calls that borrow the server again. Only `socketpair(2)` is
//! called, so Miri can check the pointers: `cargo +nightly miri test --lib
//! ffi::`.

use super::clients::CLIENT_NOFREE_CONN;
use super::*;
use crate::ffi::nal::{
    NAL_BUFFER_data, NAL_BUFFER_used, NAL_BUFFER_write, NAL_CONNECTION_create_pair,
    NAL_CONNECTION_free, NAL_CONNECTION_get_read, NAL_CONNECTION_get_send, NAL_CONNECTION_new,
};
use crate::proto::{decode_all, encode_message, Command, Role};

#[test]
fn clients_and_their_server_across_calls() {
    assert_eq!(DC_SERVER_set_default_cache(), 1);
    let ctx = DC_SERVER_new(64);
    assert!(!ctx.is_null());
    let (near, far) = (NAL_CONNECTION_new(), NAL_CONNECTION_new());
    let now = timeval {
        tv_sec: 1000,
        tv_usec: 0,
    };
    let mut request = Vec::new();
    encode_message(&mut request, false, 5, Command::Have, b"id").unwrap();
    // SAFETY: live objects from this test, each freed once, after its
    // last use; `now` outlives the calls.
    unsafe {
        assert_eq!(NAL_CONNECTION_create_pair(near, far, 4096), 1);
        let a = DC_SERVER_new_client(ctx, near, CLIENT_NOFREE_CONN);
        let b = DC_SERVER_new_client(ctx, NAL_CONNECTION_new(), 0);
        assert!(!a.is_null() && !b.is_null());
        // Calls that borrow the server again, between uses of the links.
        DC_SERVER_reset_operations(ctx);
        assert_eq!(DC_SERVER_clients_empty(ctx), 0);

        let read = NAL_CONNECTION_get_read(near);
        let len = request.len() as c_uint;
        assert_eq!(NAL_BUFFER_write(read, request.as_ptr(), len), len);
        assert_eq!(DC_SERVER_process_client(a, &now), 1);
        assert_eq!(DC_SERVER_num_operations(ctx), 1);
        let send = NAL_CONNECTION_get_send(near);
        let used = NAL_BUFFER_used(send) as usize;
        let reply = std::slice::from_raw_parts(NAL_BUFFER_data(send), used);
        let (replies, partial) = decode_all(Role::Client, reply).unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(
            (replies[0].uid, &replies[0].payload[..], partial),
            (5, &[1][..], false)
        );

        assert_eq!(DC_SERVER_del_client(b), 1, "frees its connection too");
        assert_eq!(DC_SERVER_del_client(a), 1);
        assert_eq!(DC_SERVER_clients_empty(ctx), 1);

        // A client left to the program when its server is freed.
        let c = DC_SERVER_new_client(ctx, near, CLIENT_NOFREE_CONN);
        DC_SERVER_free(ctx);
        assert_eq!(DC_SERVER_process_client(c, &now), 0, "its server is gone");
        assert_eq!(DC_SERVER_del_client(c), 1);
        NAL_CONNECTION_free(near);
        NAL_CONNECTION_free(far);
    }
}
