//! The agent context of a conversation (`agent.agent_context`): the
//! system-message suffix, always-on repository skills (no trigger), and
//! knowledge skills that activate when a user message contains one of
//! their keywords, plus the user-message suffix. Pure functions over the
//! agent's JSON; the conversation actor applies them when it builds the
//! system prompt and each user message.

use serde_json::Value;

use crate::tools::content::Content;

/// Extra system-prompt text: repository skills and the system suffix.
pub fn system_additions(agent_context: Option<&Value>) -> Option<String> {
    let ctx = agent_context?;
    let mut out = String::new();
    let repo: Vec<&Value> = skills(ctx)
        .filter(|s| s.get("trigger").is_none_or(Value::is_null))
        .collect();
    if !repo.is_empty() {
        out.push_str("<REPO_CONTEXT>\nThe following instructions come with this repository or workspace. Follow them.\n");
        for s in repo {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("skill");
            let content = s.get("content").and_then(Value::as_str).unwrap_or("");
            out.push_str(&format!("\n[{name}]\n{content}\n"));
        }
        out.push_str("</REPO_CONTEXT>");
    }
    if let Some(suffix) = ctx.get("system_message_suffix").and_then(Value::as_str)
        && !suffix.trim().is_empty()
    {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(suffix);
    }
    (!out.is_empty()).then_some(out)
}

fn skills(ctx: &Value) -> impl Iterator<Item = &Value> {
    ctx.get("skills")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// What a user message adds: the names of knowledge skills whose keywords
/// it contains (not already `active`), and the extended content (those
/// skills' instructions, then the user-message suffix).
pub fn for_user_message(
    agent_context: Option<&Value>,
    text: &str,
    active: &[String],
) -> (Vec<String>, Vec<Content>) {
    let Some(ctx) = agent_context else {
        return (vec![], vec![]);
    };
    let lower = text.to_lowercase();
    let mut names = vec![];
    let mut extended = vec![];
    for s in skills(ctx) {
        let Some(trigger) = s.get("trigger").filter(|t| !t.is_null()) else {
            continue;
        };
        let keywords = trigger
            .get("keywords")
            .or_else(|| trigger.get("triggers"))
            .and_then(Value::as_array);
        let Some(hit) = keywords
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|k| !k.is_empty() && lower.contains(&k.to_lowercase()))
        else {
            continue;
        };
        let name = s
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("skill")
            .to_string();
        if active.contains(&name) || names.contains(&name) {
            continue;
        }
        let content = s.get("content").and_then(Value::as_str).unwrap_or("");
        extended.push(Content::text(format!(
            "<EXTRA_INFO>\nThe keyword \"{hit}\" in the message activated the skill \"{name}\". \
             Use it if it helps with the request.\n\n{content}\n</EXTRA_INFO>"
        )));
        names.push(name);
    }
    if let Some(suffix) = ctx.get("user_message_suffix").and_then(Value::as_str)
        && !suffix.trim().is_empty()
    {
        extended.push(Content::text(suffix.to_string()));
    }
    (names, extended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repo_skills_suffixes_and_keywords() {
        let ctx = json!({
            "skills": [
                {"name": "repo", "content": "Use tabs.", "trigger": null},
                {"name": "docker", "content": "Run docker with --rm.", "trigger": {"type": "keyword", "keywords": ["docker"]}}
            ],
            "system_message_suffix": "Be brief.",
            "user_message_suffix": "Reply in English."
        });
        let sys = system_additions(Some(&ctx)).unwrap();
        assert!(sys.contains("Use tabs.") && sys.ends_with("Be brief."));
        assert!(!sys.contains("docker with"));
        let (names, ext) = for_user_message(Some(&ctx), "Please fix the Docker build", &[]);
        assert_eq!(names, vec!["docker"]);
        assert_eq!(ext.len(), 2);
        assert!(ext[0].as_text().unwrap().contains("--rm"));
        let (names, ext) = for_user_message(
            Some(&ctx),
            "Please fix the Docker build",
            &["docker".into()],
        );
        assert!(names.is_empty(), "an active skill is not added twice");
        assert_eq!(ext.len(), 1);
        assert_eq!(for_user_message(None, "docker", &[]).0.len(), 0);
    }
}
