//! The checked-in C headers compile the way users include them (C89 to C11,
//! pedantic, and C++), and their macros agree with the Rust constants.

use distcache::internals::client::DEFAULT_TIMEOUT;
use distcache::internals::proto;
use distcache::Flags;
use std::path::Path;
use std::process::Command;

const ALL_HEADERS: &str = "#include <libnal/nal.h>\n#include <libnal/nal_devel.h>\n\
#include <distcache/dc_plug.h>\n#include <distcache/dc_server.h>\n\
#include <distcache/dc_client.h>\n";

fn include_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("include")
        .display()
        .to_string()
}

fn compile(compiler: &str, args: &[&str], source: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ext = if compiler == "c++" { "cc" } else { "c" };
    let file = dir.path().join(format!("t.{ext}"));
    std::fs::write(&file, source).unwrap();
    let out = Command::new(compiler)
        .args(args)
        .args([
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
            &include_dir(),
        ])
        .arg(&file)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "{compiler} {args:?} failed:\n{}\n--- source:\n{source}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn headers_compile_in_every_c_standard_and_cxx() {
    let program = format!("{ALL_HEADERS}{ALL_HEADERS}int main(void) {{ return 0; }}\n");
    for std in ["-std=c89", "-std=c99", "-std=c11", "-std=gnu17"] {
        compile("cc", &[std, "-pedantic-errors"], &program);
    }
    compile("c++", &["-std=c++11", "-pedantic-errors"], &program);
}

#[test]
fn macros_match_the_rust_constants() {
    let checks = [
        ("DC_CTX_FLAG_PERSISTENT", Flags::PERSISTENT.bits()),
        (
            "DC_CTX_FLAG_PERSISTENT_PIDCHECK",
            Flags::PERSISTENT_PIDCHECK.bits(),
        ),
        (
            "DC_CTX_FLAG_PERSISTENT_RETRY",
            Flags::PERSISTENT_RETRY.bits(),
        ),
        ("DC_CTX_FLAG_PERSISTENT_LATE", Flags::PERSISTENT_LATE.bits()),
        ("DISTCACHE_PROTO_LEVEL", proto::PROTO_LEVEL),
        ("DC_MSG_MAX_DATA", proto::MAX_FRAME_DATA as u32),
        ("DC_MAX_MSG", proto::MAX_FRAMES as u32),
        ("DC_MAX_TOTAL_DATA", proto::MAX_TOTAL_DATA as u32),
        ("DC_MAX_ID_LEN", proto::MAX_ID_LEN as u32),
        ("DC_MAX_EXPIRY", proto::MAX_EXPIRY_MS),
        ("DC_MAX_DATA_LEN", proto::MAX_TOTAL_DATA as u32),
        ("DC_CMD_ADD", u32::from(proto::Command::Add.wire()) + 1),
        ("DC_CMD_HAVE", u32::from(proto::Command::Have.wire()) + 1),
        ("DC_CMD_TAKE", u32::from(proto::Command::Take.wire()) + 1),
    ];
    let mut program = String::from(ALL_HEADERS);
    program.push_str("typedef char check_type;\n");
    for (i, (name, value)) in checks.iter().enumerate() {
        // A negative array size fails to compile when the values differ.
        program.push_str(&format!(
            "typedef char check_{i}[((unsigned long)({name}) == {value}UL) ? 1 : -1];\n"
        ));
    }
    program.push_str("int main(void) { return 0; }\n");
    compile("cc", &["-std=c99", "-Wno-unused-local-typedefs"], &program);
    assert_eq!(DEFAULT_TIMEOUT.as_millis(), 1000);
}
