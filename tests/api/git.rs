//! Git routes on repositories the tests create: every kind of change,
//! explicit and detected bases, empty and non-repositories, bad refs, and
//! per-file diffs.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::files::enc;
use crate::helpers::{TestApp, spawn_app};

/// Runs git in `dir` with a fixed identity and no user configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("array expected: {v}"))
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expect(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .collect()
}

async fn changes(app: &TestApp, path: &str, git_ref: Option<&str>) -> (u16, Value) {
    let q = match git_ref {
        Some(r) => format!("&ref={}", enc(r)),
        None => String::new(),
    };
    app.get(&format!("/api/git/changes?path={}{q}", enc(path)))
        .await
}

async fn diff(app: &TestApp, path: &str, git_ref: Option<&str>) -> (u16, Value) {
    let q = match git_ref {
        Some(r) => format!("&ref={}", enc(r)),
        None => String::new(),
    };
    app.get(&format!("/api/git/diff?path={}{q}", enc(path)))
        .await
}

/// `abs` written relative to the test process's working directory (which
/// is the server's).
fn relative_to_cwd(abs: &Path) -> String {
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd.components().count() - 1;
    let mut rel = "../".repeat(ups);
    rel.push_str(abs.to_string_lossy().trim_start_matches('/'));
    rel
}

/// A repository with one commit of a.txt, b.txt, old.txt and a working tree
/// holding every kind of change.
fn changed_repo(root: &Path) {
    git(root, &["init", "-q"]);
    write(root, "a.txt", "line one\nline two\n");
    write(root, "b.txt", "bee\n");
    write(root, "old.txt", "moving content\n");
    write(root, ".gitignore", "ignored.log\n");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "first"]);
    write(root, "a.txt", "line one\nline 2\n");
    std::fs::remove_file(root.join("b.txt")).unwrap();
    git(root, &["mv", "old.txt", "new.txt"]);
    write(root, "staged.txt", "staged\n");
    git(root, &["add", "staged.txt"]);
    write(root, "sub dir/un tracked.txt", "untracked\n");
    write(root, "ignored.log", "noise\n");
}

#[actix_web::test]
async fn changes_report_every_kind_of_change() {
    let app = spawn_app().await;
    let repo = app.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    changed_repo(&repo);
    let repo_s = repo.to_string_lossy().to_string();
    let want = expect(&[
        ("UPDATED", "a.txt"),
        ("DELETED", "b.txt"),
        ("ADDED", "new.txt"),
        ("DELETED", "old.txt"),
        ("ADDED", "staged.txt"),
        ("ADDED", "sub dir/un tracked.txt"),
    ]);

    let (status, body) = changes(&app, &repo_s, Some("HEAD")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pairs(&body), want);
    // Without a remote the detected base is HEAD.
    let (status, body) = changes(&app, &repo_s, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pairs(&body), want);
    // Relative paths resolve against the server's working directory, and a
    // trailing `/.` (as the Python client sends) is fine.
    let rel = format!("{}/.", relative_to_cwd(&repo));
    let (status, body) = changes(&app, &rel, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pairs(&body), want);

    // A repository nested one level below reports under its folder.
    let inner = repo.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    git(&inner, &["init", "-q"]);
    write(&inner, "x.txt", "x\n");
    let (_, body) = changes(&app, &repo_s, Some("HEAD")).await;
    let got = pairs(&body);
    assert!(
        got.contains(&("ADDED".into(), "inner/x.txt".into())),
        "{got:?}"
    );
    assert!(!got.iter().any(|(_, p)| p == "inner/"), "{got:?}");
}

#[actix_web::test]
async fn changes_edge_cases() {
    let app = spawn_app().await;
    let repo = app.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    changed_repo(&repo);
    let repo_s = repo.to_string_lossy().to_string();

    let (status, body) = changes(&app, &repo_s, Some("nope")).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"detail": "Git command failed: git --no-pager rev-parse --verify 'nope^{commit}'"})
        )
    );
    let probe = app.path("probe.txt");
    let evil = format!("--output={}", probe.to_string_lossy());
    let (status, body) = changes(&app, &repo_s, Some(&evil)).await;
    assert_eq!(status, 400, "{body}");
    assert!(!probe.exists(), "an option-like ref never reaches git");

    let plain = app.path("not-a-repo");
    std::fs::create_dir_all(&plain).unwrap();
    write(&plain, "f.txt", "x");
    let (status, body) = changes(&app, &plain.to_string_lossy(), None).await;
    assert_eq!((status, body), (200, json!([])));
    let (status, body) = changes(&app, &app.path("missing").to_string_lossy(), None).await;
    assert_eq!((status, body), (200, json!([])));
    assert_eq!(app.get("/api/git/changes").await.0, 422);

    // A repository without commits compares with the empty tree.
    let empty = app.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    git(&empty, &["init", "-q"]);
    write(&empty, "TODO.md", "- [ ] things\n");
    for r in [None, Some("HEAD")] {
        let (status, body) = changes(&app, &empty.to_string_lossy(), r).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!([{"status": "ADDED", "path": "TODO.md"}]));
    }
}

#[actix_web::test]
async fn detected_base_follows_the_remote_branches() {
    let app = spawn_app().await;
    let repo = app.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    write(&repo, "base.txt", "base\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    let base = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["update-ref", "refs/remotes/origin/main", &base]);
    git(
        &repo,
        &[
            "symbolic-ref",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/main",
        ],
    );
    write(&repo, "committed.txt", "committed\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "local work"]);
    let repo_s = repo.to_string_lossy().to_string();

    // On main: compared with origin/main, so committed work shows.
    let (_, body) = changes(&app, &repo_s, None).await;
    assert_eq!(pairs(&body), expect(&[("ADDED", "committed.txt")]));
    let (_, body) = changes(&app, &repo_s, Some("HEAD")).await;
    assert_eq!(body, json!([]));

    // On a branch without a remote: the fork point with origin/main.
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    write(&repo, "feature.txt", "f\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "feature"]);
    let (_, body) = changes(&app, &repo_s, None).await;
    assert_eq!(
        pairs(&body),
        expect(&[("ADDED", "committed.txt"), ("ADDED", "feature.txt")])
    );
    let (_, body) = changes(&app, &repo_s, Some(&base)).await;
    assert_eq!(
        pairs(&body),
        expect(&[("ADDED", "committed.txt"), ("ADDED", "feature.txt")])
    );
}

#[actix_web::test]
async fn diff_of_one_file() {
    let app = spawn_app().await;
    let repo = app.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    changed_repo(&repo);

    let a = repo.join("a.txt");
    let (status, body) = diff(&app, &a.to_string_lossy(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"modified": "line one\nline 2", "original": "line one\nline two"})
    );
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["modified", "original"]);
    let (_, body) = diff(&app, &relative_to_cwd(&a), Some("HEAD")).await;
    assert_eq!(body["original"], "line one\nline two");

    let untracked = repo.join("sub dir/un tracked.txt");
    let (_, body) = diff(&app, &untracked.to_string_lossy(), None).await;
    assert_eq!(body, json!({"modified": "untracked", "original": ""}));

    let (status, body) = diff(&app, &a.to_string_lossy(), Some("nope")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "Git command failed: git --no-pager rev-parse --verify 'nope^{commit}'"
    );

    let gone = repo.join("b.txt");
    let (status, body) = diff(&app, &gone.to_string_lossy(), None).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"detail": format!("File does not exist: {}", gone.display())})
        )
    );

    let outside = app.path("loose.txt");
    write(app.dir.path(), "loose.txt", "loose\n");
    let (status, body) = diff(&app, &outside.to_string_lossy(), None).await;
    assert_eq!(
        (status, body),
        (200, json!({"modified": null, "original": null}))
    );

    let big = repo.join("big.txt");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    let (status, body) = diff(&app, &big.to_string_lossy(), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("File too large")
    );
    assert_eq!(app.get("/api/git/diff").await.0, 422);
}
