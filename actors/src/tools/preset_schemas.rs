//! Descriptions and JSON-schema properties of the tools the openhands-tools presets add
//! to the default set: `apply_patch` (GPT-5 preset), `read_file`, `write_file`, `edit`,
//! `list_directory` (Gemini preset), and `glob`, `grep`, `planning_file_editor`
//! (planning preset).
//!
//! Parameter names, types, enums and required sets are the reference's, because LLM
//! prompts and the client's Action models depend on them; every description is our own
//! wording. This module only builds text and JSON: tool metadata, parsing and execution
//! live in `catalog` and the executors.

use serde_json::{Value, json};

use crate::tools::search::MAX_RESULTS;

/// Lines `read_file` returns when the call gives no `limit`.
pub const READ_FILE_DEFAULT_LINES: usize = 1000;

/// Entries `list_directory` returns at most.
pub const LIST_DIRECTORY_MAX_ENTRIES: usize = 500;

/// The two lines every Gemini-style tool ends its description with.
fn working_dir_tail(working_dir: &str, relative: &str) -> String {
    format!("\n\nWorking directory: {working_dir}\n{relative}")
}

/// `apply_patch`: the patch format in brief (GPT-5 models know it well; others need it).
pub fn apply_patch_description() -> String {
    "Change files of the workspace with one patch: add, delete, update or rename files.
The patch text begins with the line `*** Begin Patch` and finishes with the line
`*** End Patch`. In between come file sections:
* `*** Add File: <path>`, then every line of the new file prefixed with `+`;
* `*** Delete File: <path>`;
* `*** Update File: <path>`, optionally `*** Move to: <new path>`, then one or more
  hunks. A hunk opens with `@@` (optionally followed by a line of the file, such as a
  function signature, that tells where it goes) and lists lines prefixed with a space
  (unchanged context), `-` (removed) or `+` (added). Three lines of context around each
  change are usually enough to place it.
Paths are relative to the workspace root; a path that leads out of the workspace is
refused."
        .to_string()
}

/// `apply_patch` parameters.
pub fn apply_patch_properties() -> Value {
    json!({
        "patch": {
            "type": "string",
            "description": "The complete patch text, from its `*** Begin Patch` line to its \
    `*** End Patch` line."
        }
    })
}

/// `read_file`: paging through long files.
pub fn read_file_description(working_dir: &str) -> String {
    format!(
        "Show the lines of one text file, each with its line number.
A call returns at most {READ_FILE_DEFAULT_LINES} lines unless `limit` says otherwise. When \
more of the file remains, the answer says which lines it holds and gives the `offset` and \
`limit` that fetch the next part.
* `offset`: the 0-based line to begin at.
* `limit`: how many lines to return.
For instance read_file(file_path=\"/repo/app.py\", offset=200, limit=100) returns lines 201 \
to 300.{}",
        working_dir_tail(
            working_dir,
            "Relative paths start from there; absolute paths are fine too."
        )
    )
}

/// `read_file` parameters.
pub fn read_file_properties() -> Value {
    json!({
        "file_path": {"type": "string", "description": "Which file to show."},
        "offset": {
            "type": "integer",
            "description": "First line to show, counted from 0. Leave it out to begin at the \
    top."
        },
        "limit": {
            "type": "integer",
            "description": "How many lines to show at most; combine it with `offset` to page \
    through a long file."
        }
    })
}

/// `write_file`: whole-file writes.
pub fn write_file_description(working_dir: &str) -> String {
    format!(
        "Store a complete text as the content of a file.
A missing file is created together with any missing parent directories; an existing file
loses everything it held before and gets exactly `content`.
Good for new files and for rewrites that touch most of a file. For a few targeted changes
to an existing file, the `edit` tool is the better choice.
For instance write_file(file_path=\"/repo/hello.py\", content=\"print('hi')\\n\").{}",
        working_dir_tail(
            working_dir,
            "Relative paths start from there; absolute paths are fine too."
        )
    )
}

/// `write_file` parameters.
pub fn write_file_properties() -> Value {
    json!({
        "file_path": {"type": "string", "description": "Which file to write."},
        "content": {"type": "string", "description": "The full new content of that file."}
    })
}

/// `edit`: exact find and replace.
pub fn edit_description(working_dir: &str) -> String {
    format!(
        "Swap an exact piece of text in a file for another one.
* `old_string` has to appear in the file character for character, whitespace and
  indentation included, exactly `expected_replacements` times (one unless you say
  otherwise); every one of those places is replaced. Any other count is an error and
  the file stays untouched.
* An empty `old_string` creates a new file holding `new_string`; it fails when the file
  is already there.
* `old_string` and `new_string` must differ.
Tips: copy three to five surrounding lines into `old_string` so that it is unique, look
at the file with `read_file` first, and prefer `write_file` when most of a file changes.
For instance edit(file_path=\"src/app.py\", old_string=\"DEBUG = True\", \
new_string=\"DEBUG = False\").{}",
        working_dir_tail(
            working_dir,
            "Relative paths start from there; absolute paths are fine too."
        )
    )
}

/// `edit` parameters.
pub fn edit_properties() -> Value {
    json!({
        "file_path": {"type": "string", "description": "Which file to change."},
        "old_string": {
            "type": "string",
            "description": "The exact text to look for, whitespace included; an empty \
    string creates a new file instead."
        },
        "new_string": {"type": "string", "description": "The text that takes its place."},
        "expected_replacements": {
            "type": "integer",
            "description": "How many times `old_string` occurs and is to be replaced \
    (default 1); a different count leaves the file as it is and reports an error."
        }
    })
}

/// `list_directory`: what the LLM is told about the listing.
pub fn list_directory_description(working_dir: &str) -> String {
    format!(
        "Look at what a directory holds: every file and subdirectory with its name, full
path, kind (file or directory), size in bytes and time of last change. Hidden entries
(names starting with a dot) are part of the listing.
Without `recursive` only the directory's own entries are listed; with `recursive=true`
the entries of its subdirectories and of theirs come along too (two levels). At most
{LIST_DIRECTORY_MAX_ENTRIES} entries are returned.
For instance list_directory(dir_path=\"/repo/src\", recursive=true).{}",
        working_dir_tail(working_dir, "Relative paths start from there.")
    )
}

/// `list_directory` parameters.
pub fn list_directory_properties() -> Value {
    json!({
        "dir_path": {
            "type": "string",
            "description": "Which directory to list; the working directory when left out."
        },
        "recursive": {
            "type": "boolean",
            "description": "Also list the contents of subdirectories, two levels down."
        }
    })
}

/// `glob`: finding files by name.
pub fn glob_description(working_dir: &str) -> String {
    format!(
        "Find files whose path matches a glob pattern, most recently changed first.
* `*` matches within one path segment, `**` across any number of directories, `?` one
  character, `[abc]` one of a set and `{{a,b}}` either alternative.
* A pattern without a `/` matches file names at any depth (`*.py`); a pattern with one
  is taken from the search directory down (`src/**/*.ts`).
* Hidden files and files ignored by the project's ignore files are left out unless the
  pattern names them.
* At most {MAX_RESULTS} paths are returned; with more matches, make the pattern stricter or
  search a narrower `path`.
Typical patterns: `**/*.rs`, `tests/**/test_*.py`, `**/*.{{json,toml}}`.{}",
        working_dir_tail(
            working_dir,
            "Patterns are matched from there unless `path` names another directory."
        )
    )
}

/// `glob` parameters.
pub fn glob_properties() -> Value {
    json!({
        "pattern": {
            "type": "string",
            "description": "The glob to match, e.g. `**/*.md` or `docs/*.txt`."
        },
        "path": {
            "type": "string",
            "description": "Absolute path of the directory to search; the working directory \
    when left out."
        }
    })
}

/// `grep`: finding files by content.
pub fn grep_description(working_dir: &str) -> String {
    format!(
        "List the files whose content matches a regular expression, most recently changed
first. Only the paths come back, not the matching lines.
* The expression is matched line by line and ignores case: `todo`, `fn\\s+main`,
  `import .*requests`.
* `include` keeps only the files whose name matches a glob, such as `*.py` or
  `*.{{ts,tsx}}`.
* Hidden files, binary files and files ignored by the project's ignore files are skipped.
* At most {MAX_RESULTS} paths are returned; with more matches, use a stricter expression or
  search a narrower `path`.{}",
        working_dir_tail(
            working_dir,
            "The search covers that directory unless `path` names another one."
        )
    )
}

/// `grep` parameters.
pub fn grep_properties() -> Value {
    json!({
        "pattern": {
            "type": "string",
            "description": "The regular expression to look for in the files' lines."
        },
        "path": {
            "type": "string",
            "description": "Absolute path of the directory to search; the working directory \
    when left out."
        },
        "include": {
            "type": "string",
            "description": "Optional glob on file names, e.g. `*.go` or `*.{c,h}`."
        }
    })
}

/// `planning_file_editor`: the file editor's guidance, then the planning restriction.
/// `editor` is the file editor's description without its working-directory tail.
pub fn planning_file_editor_description(editor: &str, working_dir: &str, plan: &str) -> String {
    format!(
        "{editor}

This editor belongs to a planning agent, which reads code but does not change it:
* `view` works on any file or directory;
* `create`, `str_replace`, `insert` and `undo_edit` work on the plan file only and are
  refused for every other path;
* the plan file already exists and holds the section headings the plan has to follow;
  fill in the sections rather than replacing the structure.

Working directory: {working_dir}
Plan file: {plan}
Other agents of the workflow read the plan from that file."
    )
}
