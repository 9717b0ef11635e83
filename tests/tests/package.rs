//! The deployable package, built with the documented command (`scripts/package.sh`):
//! the Functions layout at the zip root, the binary's exec bit, a glibc ceiling of
//! 2.28 (the Azure Functions Linux images), and an answer on GET / within 1 s.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The highest `GLIBC_x.y` version the binary asks the dynamic linker for.
fn max_glibc(binary: &[u8]) -> (u32, u32) {
    let needle = b"GLIBC_";
    let mut best = (0, 0);
    for i in 0..binary.len().saturating_sub(needle.len()) {
        if &binary[i..i + needle.len()] != needle {
            continue;
        }
        let rest: String = binary[i + needle.len()..]
            .iter()
            .take(8)
            .map(|b| *b as char)
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = rest.split('.').filter_map(|p| p.parse::<u32>().ok());
        if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
            best = best.max((major, minor));
        }
    }
    best
}

fn http_get_ok(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

#[test]
fn the_package_has_the_functions_layout_and_its_binary_answers_within_a_second() {
    // The release build takes CI minutes; the package-check profile is the same script,
    // target, linker and glibc pin without the optimiser (see Cargo.toml).
    let status = Command::new("bash")
        .arg("scripts/package.sh")
        .env("CAGUARD_PACKAGE_PROFILE", "package-check")
        .current_dir(repo())
        .status()
        .expect("bash runs");
    assert!(status.success(), "scripts/package.sh failed");
    let zip_path = repo().join("dist/caguard-functions-package-check.zip");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();

    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    assert!(names.contains(&"host.json".to_string()), "{names:?}");
    for def in std::fs::read_dir(repo().join("function-definitions")).unwrap() {
        let name = def.unwrap().file_name().to_string_lossy().to_string();
        assert!(names.contains(&format!("{name}/function.json")), "{name}/function.json at the zip root: {names:?}");
    }
    let mut host = String::new();
    zip.by_name("host.json").unwrap().read_to_string(&mut host).unwrap();
    let host: serde_json::Value = serde_json::from_str(&host).unwrap();
    let exe = host["customHandler"]["description"]["defaultExecutablePath"].as_str().unwrap().to_string();
    let mode = zip.by_name(&exe).unwrap().unix_mode().expect("unix mode recorded");
    assert_eq!(mode & 0o111, 0o111, "the binary is executable: {mode:o}");

    let dir = std::env::temp_dir().join(format!("caguard-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    zip.extract(&dir).unwrap();
    let binary = dir.join(&exe);
    assert!(std::fs::metadata(&binary).unwrap().permissions().mode() & 0o111 != 0, "exec bit survives unzip");
    let (major, minor) = max_glibc(&std::fs::read(&binary).unwrap());
    println!("highest glibc symbol version: GLIBC_{major}.{minor}");
    assert!((major, minor) <= (2, 28) && major == 2, "GLIBC_{major}.{minor} is newer than 2.28");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let mut child = Command::new(&binary)
        .current_dir(&dir)
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = None;
    while started.elapsed() < Duration::from_secs(5) {
        if http_get_ok(port) {
            ready = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.expect("the packaged binary answered GET /");
    println!("packaged binary answered GET / after {ready:?}");
    assert!(ready < Duration::from_secs(1), "{ready:?}");
}
