//! Skills found on this machine, as `POST /api/skills` reports them: project
//! skills (`<project>/.agents/skills`, `.openhands/skills`,
//! `.openhands/microagents`, plus `AGENTS.md`-style files at the project and
//! git roots), user skills (the same folders under the home directory) and
//! the sandbox `work_hosts` skill built from exposed URLs.
//!
//! Skill files are Markdown with an optional front matter block (`name`,
//! `description`, `triggers`, `inputs`, `disable-model-invocation`);
//! `<dir>/SKILL.md` folders follow the AgentSkills layout. Public and
//! organisation skills live in remote git repositories, which this server
//! does not fetch: those sources always count 0.
//!
//! Blocking file I/O (bounded: file size, file count and depth are capped);
//! call from a blocking thread. Nothing is executed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// Largest skill file read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most files looked at per skills folder.
const MAX_FILES: usize = 1000;
/// Deepest folder level searched below a skills folder.
const MAX_DEPTH: usize = 8;

/// Third-party instruction files recognised at a project root, and the
/// skill names they get.
const THIRD_PARTY: [(&str, &str); 5] = [
    (".cursorrules", "cursorrules"),
    ("agents.md", "agents"),
    ("agent.md", "agents"),
    ("claude.md", "claude"),
    ("gemini.md", "gemini"),
];

/// Prefix of the exposed URLs that become the `work_hosts` skill.
const WORKER_URL_PREFIX: &str = "WORKER_";

/// One exposed sandbox URL.
#[derive(Debug, Clone)]
pub struct ExposedUrl {
    /// Name (only `WORKER_*` ones are used).
    pub name: String,
    /// URL.
    pub url: String,
    /// Port.
    pub port: i64,
}

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct SkillSources {
    /// Public skills (remote; not fetched).
    pub load_public: bool,
    /// User skills under `home`.
    pub load_user: bool,
    /// Project skills under `project_dir`.
    pub load_project: bool,
    /// Organisation skills (remote; not fetched).
    pub load_org: bool,
    /// The project folder.
    pub project_dir: Option<PathBuf>,
    /// The user's home folder.
    pub home: Option<PathBuf>,
    /// Exposed sandbox URLs.
    pub sandbox_urls: Vec<ExposedUrl>,
}

#[derive(Debug, Clone)]
struct Skill {
    name: String,
    kind: &'static str,
    content: String,
    triggers: Vec<String>,
    source: Option<String>,
    description: Option<String>,
    agentskills: bool,
    disable_model_invocation: bool,
}

impl Skill {
    fn to_value(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "content": self.content,
            "triggers": self.triggers,
            "source": self.source,
            "description": self.description,
            "is_agentskills_format": self.agentskills,
            "disable_model_invocation": self.disable_model_invocation,
        })
    }
}

/// A front matter value: a scalar or a list of scalars.
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Scalar(String),
    Bool(bool),
    Null,
    List(Vec<String>),
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let quoted = s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')));
    if quoted {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

fn scalar(raw: &str) -> Yaml {
    let t = raw.trim();
    match t {
        "" | "~" | "null" | "Null" | "NULL" => Yaml::Null,
        "true" | "True" | "TRUE" => Yaml::Bool(true),
        "false" | "False" | "FALSE" => Yaml::Bool(false),
        _ if t.starts_with('[') && t.ends_with(']') => Yaml::List(
            t[1..t.len() - 1]
                .split(',')
                .map(unquote)
                .filter(|s| !s.is_empty())
                .collect(),
        ),
        _ => Yaml::Scalar(unquote(t)),
    }
}

/// Splits a Markdown file into its front matter (a small YAML subset: top
/// level `key: value`, inline `[a, b]` lists and `- item` block lists) and
/// its body.
fn front_matter(text: &str) -> (Vec<(String, Yaml)>, String) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (vec![], text.to_string());
    };
    let mut fields: Vec<(String, Yaml)> = vec![];
    let mut offset = 0;
    let mut body = None;
    for line in rest.split_inclusive('\n') {
        offset += line.len();
        let l = line.trim_end_matches(['\n', '\r']);
        if l.trim_end() == "---" {
            body = Some(rest[offset..].to_string());
            break;
        }
        if let Some(item) = l
            .trim_start()
            .strip_prefix("- ")
            .filter(|_| l.starts_with(' ') || l.starts_with('-'))
        {
            if let Some((_, v)) = fields.last_mut() {
                match v {
                    Yaml::List(items) => items.push(unquote(item)),
                    Yaml::Null => *v = Yaml::List(vec![unquote(item)]),
                    _ => {}
                }
            }
            continue;
        }
        if l.starts_with(' ') || l.starts_with('\t') || l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once(':') {
            fields.push((k.trim().to_string(), scalar(v)));
        }
    }
    match body {
        Some(b) => (fields, b.trim_start_matches(['\n', '\r']).to_string()),
        // No closing marker: the whole file is content.
        None => (vec![], text.to_string()),
    }
}

fn field<'a>(fields: &'a [(String, Yaml)], keys: &[&str]) -> Option<&'a Yaml> {
    keys.iter()
        .find_map(|k| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v))
}

fn read_capped(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE_BYTES {
        log::warn!("{}: skill file too large; skipped", path.display());
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn skill_from_file(path: &Path, derived_name: &str, agentskills: bool) -> Option<Skill> {
    let text = read_capped(path)?;
    let (fields, content) = front_matter(&text);
    let name = match field(&fields, &["name"]) {
        Some(Yaml::Scalar(s)) if !s.is_empty() => s.clone(),
        _ => derived_name.to_string(),
    };
    let mut triggers = match field(&fields, &["triggers"]) {
        Some(Yaml::List(t)) => t.clone(),
        None | Some(Yaml::Null) => vec![],
        Some(_) => {
            log::warn!("{}: 'triggers' must be a list; skipped", path.display());
            return None;
        }
    };
    let has_inputs = field(&fields, &["inputs"]).is_some();
    if has_inputs && !triggers.contains(&format!("/{name}")) {
        triggers.push(format!("/{name}"));
    }
    let kind = if agentskills {
        "agentskills"
    } else if triggers.is_empty() {
        "repo"
    } else {
        "knowledge"
    };
    let description = match field(&fields, &["description"]) {
        Some(Yaml::Scalar(s)) => Some(s.clone()),
        _ => None,
    };
    let disable_model_invocation = matches!(
        field(
            &fields,
            &["disable-model-invocation", "disable_model_invocation"]
        ),
        Some(Yaml::Bool(true))
    );
    Some(Skill {
        name,
        kind,
        content,
        triggers,
        source: Some(path.to_string_lossy().into_owned()),
        description,
        agentskills,
        disable_model_invocation,
    })
}

/// Markdown files below `dir` (bounded walk; symlinked folders not followed).
fn markdown_files(dir: &Path, skip: &HashSet<PathBuf>) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            seen += 1;
            if seen > MAX_FILES {
                log::warn!(
                    "{}: more than {MAX_FILES} entries; the rest is skipped",
                    dir.display()
                );
                return out;
            }
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if depth < MAX_DEPTH && !skip.contains(&path) {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md")
                && name != "README.md"
                && !name.eq_ignore_ascii_case("skill.md")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every skill of one skills folder: always-on ones first, then triggered
/// ones, then AgentSkills folders (the reference's order).
fn load_dir(dir: &Path) -> Vec<Skill> {
    if !dir.is_dir() {
        return vec![];
    }
    let mut skill_dirs = HashSet::new();
    let mut agent = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().take(MAX_FILES) {
            let sub = e.path();
            if !sub.is_dir() {
                continue;
            }
            let md = ["SKILL.md", "skill.md"]
                .iter()
                .map(|n| sub.join(n))
                .find(|p| p.is_file());
            if let Some(md) = md {
                let dir_name = e.file_name().to_string_lossy().into_owned();
                if let Some(s) = skill_from_file(&md, &dir_name, true) {
                    agent.push(s);
                }
                skill_dirs.insert(sub);
            }
        }
    }
    let (mut repo, mut knowledge) = (vec![], vec![]);
    for path in markdown_files(dir, &skill_dirs) {
        let rel = path.strip_prefix(dir).unwrap_or(&path).with_extension("");
        let derived = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if let Some(s) = skill_from_file(&path, &derived, false) {
            if s.kind == "repo" {
                repo.push(s);
            } else {
                knowledge.push(s);
            }
        }
    }
    repo.into_iter().chain(knowledge).chain(agent).collect()
}

fn merge_first_wins(into: &mut Vec<Skill>, seen: &mut HashSet<String>, more: Vec<Skill>) {
    for s in more {
        if seen.insert(s.name.clone()) {
            into.push(s);
        }
    }
}

fn skill_dirs(root: &Path) -> [PathBuf; 3] {
    [
        root.join(".agents").join("skills"),
        root.join(".openhands").join("skills"),
        root.join(".openhands").join("microagents"),
    ]
}

fn third_party(root: &Path) -> Vec<Skill> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return vec![];
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let lower = e.file_name().to_string_lossy().to_ascii_lowercase();
            THIRD_PARTY
                .iter()
                .position(|(f, _)| *f == lower)
                .map(|i| (i, e.path()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .filter_map(|(i, path)| {
            let content = read_capped(&path)?;
            Some(Skill {
                name: THIRD_PARTY[i].1.to_string(),
                kind: "repo",
                content,
                triggers: vec![],
                source: Some(path.to_string_lossy().into_owned()),
                description: None,
                agentskills: false,
                disable_model_invocation: false,
            })
        })
        .collect()
}

fn git_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .take(64)
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

fn project_skills(dir: &Path) -> Vec<Skill> {
    let mut roots = vec![dir.to_path_buf()];
    if let Some(g) = git_root(dir).filter(|g| g != dir) {
        roots.push(g);
    }
    let (mut out, mut seen) = (vec![], HashSet::new());
    for root in &roots {
        merge_first_wins(&mut out, &mut seen, third_party(root));
    }
    for root in &roots {
        for d in skill_dirs(root) {
            merge_first_wins(&mut out, &mut seen, load_dir(&d));
        }
    }
    out
}

fn user_skills(home: &Path) -> Vec<Skill> {
    let (mut out, mut seen) = (vec![], HashSet::new());
    for d in skill_dirs(home) {
        merge_first_wins(&mut out, &mut seen, load_dir(&d));
    }
    out
}

fn sandbox_skill(urls: &[ExposedUrl]) -> Option<Skill> {
    let hosts: Vec<String> = urls
        .iter()
        .filter(|u| u.name.starts_with(WORKER_URL_PREFIX))
        .map(|u| format!("* {} (port {})", u.url, u.port))
        .collect();
    if hosts.is_empty() {
        return None;
    }
    Some(Skill {
        name: "work_hosts".into(),
        kind: "repo",
        content: format!(
            "The user can reach web applications running in this sandbox at these hosts \
             (each with its port):\n{}",
            hosts.join("\n")
        ),
        triggers: vec![],
        source: None,
        description: None,
        agentskills: false,
        disable_model_invocation: false,
    })
}

/// Loads and merges the skills (later sources override earlier ones of the
/// same name: sandbox < public/user < organisation < project). Returns the
/// `SkillsResponse` body: `{"skills": […], "sources": {…}}`.
pub fn load_skills(req: &SkillSources) -> Value {
    let sandbox: Vec<Skill> = sandbox_skill(&req.sandbox_urls).into_iter().collect();
    let user = match (&req.home, req.load_user) {
        (Some(h), true) => user_skills(h),
        _ => vec![],
    };
    let project = match (&req.project_dir, req.load_project) {
        (Some(p), true) => project_skills(p),
        _ => vec![],
    };
    let mut sources = Map::new();
    sources.insert("sandbox".into(), sandbox.len().into());
    // Public skills would come from a remote repository: none offline.
    sources.insert("sdk_base".into(), user.len().into());
    sources.insert("org".into(), 0.into());
    sources.insert("project".into(), project.len().into());

    let mut merged: Vec<Skill> = vec![];
    for list in [sandbox, user, project] {
        for s in list {
            match merged.iter_mut().find(|m| m.name == s.name) {
                Some(slot) => *slot = s,
                None => merged.push(s),
            }
        }
    }
    json!({
        "skills": merged.iter().map(Skill::to_value).collect::<Vec<_>>(),
        "sources": sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_subset() {
        let (f, body) = front_matter(
            "---\nname: git-helper\ndescription: \"Helps: with git\"\ntriggers:\n  - git\n  - 'commit'\nflag: true\nmetadata:\n  a: b\n---\n\nBody text\n",
        );
        assert_eq!(
            field(&f, &["name"]),
            Some(&Yaml::Scalar("git-helper".into()))
        );
        assert_eq!(
            field(&f, &["description"]),
            Some(&Yaml::Scalar("Helps: with git".into()))
        );
        assert_eq!(
            field(&f, &["triggers"]),
            Some(&Yaml::List(vec!["git".into(), "commit".into()]))
        );
        assert_eq!(field(&f, &["flag"]), Some(&Yaml::Bool(true)));
        assert_eq!(body, "Body text\n");
        let (f, _) = front_matter("---\ntriggers: [a, \"b\"]\n---\nx");
        assert_eq!(
            field(&f, &["triggers"]),
            Some(&Yaml::List(vec!["a".into(), "b".into()]))
        );
        let (f, body) = front_matter("no front matter");
        assert!(f.is_empty());
        assert_eq!(body, "no front matter");
    }

    #[test]
    fn project_and_user_sources() {
        let home = tempfile::tempdir().unwrap();
        let proj = tempfile::tempdir().unwrap();
        let skills = proj.path().join(".openhands/skills");
        std::fs::create_dir_all(skills.join("nested")).unwrap();
        std::fs::create_dir_all(skills.join("pdf")).unwrap();
        std::fs::write(skills.join("always.md"), "Always on").unwrap();
        std::fs::write(
            skills.join("nested/deep.md"),
            "---\ntriggers: [deep]\n---\nDeep",
        )
        .unwrap();
        std::fs::write(skills.join("README.md"), "ignored").unwrap();
        std::fs::write(
            skills.join("pdf/SKILL.md"),
            "---\nname: pdf\ndescription: PDFs\n---\nUse pdftotext",
        )
        .unwrap();
        std::fs::write(proj.path().join("AGENTS.md"), "Repo rules").unwrap();
        let user = home.path().join(".openhands/skills");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("always.md"), "user version").unwrap();
        std::fs::write(
            user.join("mine.md"),
            "---\nname: mine\ntriggers:\n- me\n---\nMine",
        )
        .unwrap();

        let out = load_skills(&SkillSources {
            load_public: true,
            load_user: true,
            load_project: true,
            load_org: true,
            project_dir: Some(proj.path().to_path_buf()),
            home: Some(home.path().to_path_buf()),
            sandbox_urls: vec![ExposedUrl {
                name: "WORKER_1".into(),
                url: "http://h:1".into(),
                port: 1,
            }],
        });
        assert_eq!(
            out["sources"],
            json!({"sandbox": 1, "sdk_base": 2, "org": 0, "project": 4})
        );
        let names: Vec<&str> = out["skills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "work_hosts",
                "always",
                "mine",
                "agents",
                "nested/deep",
                "pdf"
            ]
        );
        let always = &out["skills"][1];
        assert_eq!(always["content"], "Always on", "project overrides user");
        assert_eq!(always["type"], "repo");
        let deep = &out["skills"][4];
        assert_eq!(
            (deep["type"].as_str(), &deep["triggers"]),
            (Some("knowledge"), &json!(["deep"]))
        );
        let pdf = &out["skills"][5];
        assert_eq!(pdf["type"], "agentskills");
        assert_eq!(pdf["is_agentskills_format"], true);
        assert_eq!(pdf["description"], "PDFs");
    }
}
