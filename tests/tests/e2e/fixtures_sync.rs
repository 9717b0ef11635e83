//! `scripts/sync-fixtures.sh` (issue #17): nothing to add on an up-to-date tree;
//! one new file in the source adds exactly that file; a differing file is never
//! overwritten. Runs on copies, so the repository's fixtures are untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &t)
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

fn sync(src: &Path, dest: &Path) -> (i32, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/sync-fixtures.sh");
    let out = Command::new("bash").arg(script).arg(src).env("FIXTURES_DEST", dest).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn sync_adds_exactly_the_new_file_and_never_overwrites() {
    let root = std::env::temp_dir().join(format!("caguard-sync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (src, dest) = (root.join("src"), root.join("dest"));
    copy_tree(&caguard_e2e::fixtures_dir(), &src);
    copy_tree(&caguard_e2e::fixtures_dir(), &dest);

    let (code, text) = sync(&src, &dest);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("nothing to add"), "{text}");

    std::fs::write(src.join("graph/new-example.json"), "{}").unwrap();
    let (code, text) = sync(&src, &dest);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("added:").count(), 1, "{text}");
    assert!(text.contains("added: graph/new-example.json"), "{text}");
    assert_eq!(std::fs::read_to_string(dest.join("graph/new-example.json")).unwrap(), "{}");

    std::fs::write(src.join("graph/new-example.json"), "{\"changed\": true}").unwrap();
    let (code, text) = sync(&src, &dest);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("differs (not overwritten): graph/new-example.json"), "{text}");
    assert_eq!(std::fs::read_to_string(dest.join("graph/new-example.json")).unwrap(), "{}", "kept");
    let _ = std::fs::remove_dir_all(&root);
}
