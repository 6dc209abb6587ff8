//! The content blocks that observations, messages and the system prompt carry:
//! `TextContent` and `ImageContent`, and the `Content` union of the two.
//!
//! The wire shapes are fixed by the reference client (contract §2.2): a text block
//! serializes as `{"cache_prompt":false,"type":"text","text":"…"}` and an image block as
//! `{"cache_prompt":false,"type":"image","image_urls":[…]}`, in exactly that key order.
//! The client validates text blocks with `extra="forbid"`, so deserializing one rejects
//! unknown keys (except the legacy `enable_truncation`, which is dropped); image blocks
//! ignore unknown keys. This module only models the blocks: it must not know about events,
//! observations or how a block is rendered for a particular LLM provider.

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A text block (`{"cache_prompt":false,"type":"text","text":"…"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextContent {
    /// The text itself.
    pub text: String,
    /// Whether the LLM client should put a prompt-cache marker on this block.
    pub cache_prompt: bool,
}

/// An image block (`{"cache_prompt":false,"type":"image","image_urls":[…]}`); the URLs may
/// be `data:` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageContent {
    /// Image URLs, `data:<mime>;base64,…` allowed.
    pub image_urls: Vec<String>,
    /// Whether the LLM client should put a prompt-cache marker on this block.
    pub cache_prompt: bool,
}

/// One content block: text or image, discriminated on the wire by `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A `type:"text"` block.
    Text(TextContent),
    /// A `type:"image"` block.
    Image(ImageContent),
}

impl TextContent {
    /// A text block without a cache marker.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            cache_prompt: false,
        }
    }

    /// Validates a JSON object as a text block with the reference's strictness.
    fn from_map(mut map: Map<String, Value>) -> Result<Self, String> {
        // Legacy events stored this key; the reference strips it silently.
        map.remove("enable_truncation");
        let cache_prompt = take_cache_prompt(&mut map)?;
        match map.remove("type") {
            None => {}
            Some(Value::String(t)) if t == "text" => {}
            Some(other) => return Err(format!("text content has `type` {other}, not \"text\"")),
        }
        let text = match map.remove("text") {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(format!("text content `text` must be a string, got {other}"));
            }
            None => return Err("text content is missing `text`".to_string()),
        };
        if let Some(extra) = map.keys().next() {
            return Err(format!("unknown field `{extra}` in text content"));
        }
        Ok(Self { text, cache_prompt })
    }
}

impl ImageContent {
    /// An image block without a cache marker.
    pub fn new(image_urls: Vec<String>) -> Self {
        Self {
            image_urls,
            cache_prompt: false,
        }
    }

    /// Validates a JSON object as an image block; unknown keys are ignored, as the
    /// reference's `ImageContent` does.
    fn from_map(mut map: Map<String, Value>) -> Result<Self, String> {
        let cache_prompt = take_cache_prompt(&mut map)?;
        match map.remove("type") {
            None => {}
            Some(Value::String(t)) if t == "image" => {}
            Some(other) => return Err(format!("image content has `type` {other}, not \"image\"")),
        }
        let image_urls = match map.remove("image_urls") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(format!("image content URL must be a string, got {other}")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(format!(
                    "image content `image_urls` must be a list, got {other}"
                ));
            }
            None => return Err("image content is missing `image_urls`".to_string()),
        };
        Ok(Self {
            image_urls,
            cache_prompt,
        })
    }
}

impl Content {
    /// A text block without a cache marker.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(TextContent::new(text))
    }

    /// An image block without a cache marker.
    pub fn image(image_urls: Vec<String>) -> Self {
        Self::Image(ImageContent::new(image_urls))
    }

    /// The text of a text block, `None` for an image.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(&t.text),
            Self::Image(_) => None,
        }
    }

    /// This block as a JSON value (same shape as its serialization).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(t) => t.to_json(),
            Self::Image(i) => i.to_json(),
        }
    }
}

impl TextContent {
    /// This block as a JSON value, keys in wire order.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("cache_prompt".into(), Value::Bool(self.cache_prompt));
        map.insert("type".into(), Value::String("text".into()));
        map.insert("text".into(), Value::String(self.text.clone()));
        Value::Object(map)
    }
}

impl ImageContent {
    /// This block as a JSON value, keys in wire order.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("cache_prompt".into(), Value::Bool(self.cache_prompt));
        map.insert("type".into(), Value::String("image".into()));
        map.insert(
            "image_urls".into(),
            Value::Array(self.image_urls.iter().cloned().map(Value::String).collect()),
        );
        Value::Object(map)
    }
}

fn take_cache_prompt(map: &mut Map<String, Value>) -> Result<bool, String> {
    match map.remove("cache_prompt") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => Err(format!("`cache_prompt` must be a boolean, got {other}")),
    }
}

impl Serialize for TextContent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TextContent", 3)?;
        s.serialize_field("cache_prompt", &self.cache_prompt)?;
        s.serialize_field("type", "text")?;
        s.serialize_field("text", &self.text)?;
        s.end()
    }
}

impl Serialize for ImageContent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ImageContent", 3)?;
        s.serialize_field("cache_prompt", &self.cache_prompt)?;
        s.serialize_field("type", "image")?;
        s.serialize_field("image_urls", &self.image_urls)?;
        s.end()
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => t.serialize(serializer),
            Self::Image(i) => i.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TextContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Self::from_map(map).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ImageContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Self::from_map(map).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        let kind = match map.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(other) => return Err(D::Error::custom(format!("content `type` {other}"))),
            // Both models default `type`; like the reference's union, a block that only
            // fits the image model (it has `image_urls` and no `text`) is an image.
            None if map.contains_key("image_urls") && !map.contains_key("text") => {
                "image".to_string()
            }
            None => "text".to_string(),
        };
        match kind.as_str() {
            "text" => TextContent::from_map(map)
                .map(Self::Text)
                .map_err(D::Error::custom),
            "image" => ImageContent::from_map(map)
                .map(Self::Image)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "unknown content type `{other}`, expected \"text\" or \"image\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_serializes_in_wire_order() {
        let s = serde_json::to_string(&Content::text("hi")).unwrap();
        assert_eq!(s, r#"{"cache_prompt":false,"type":"text","text":"hi"}"#);
        assert_eq!(
            serde_json::to_string(&Content::text("hi").to_json()).unwrap(),
            s
        );
    }

    #[test]
    fn image_serializes_in_wire_order() {
        let c = Content::image(vec!["data:image/png;base64,AA==".into()]);
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(
            s,
            r#"{"cache_prompt":false,"type":"image","image_urls":["data:image/png;base64,AA=="]}"#
        );
        assert_eq!(serde_json::to_string(&c.to_json()).unwrap(), s);
    }

    #[test]
    fn text_round_trips_and_defaults() {
        let c: Content = serde_json::from_str(r#"{"type":"text","text":"a"}"#).unwrap();
        assert_eq!(c, Content::text("a"));
        let c: Content = serde_json::from_str(r#"{"text":"a","cache_prompt":true}"#).unwrap();
        assert_eq!(
            c,
            Content::Text(TextContent {
                text: "a".into(),
                cache_prompt: true
            })
        );
    }

    #[test]
    fn text_rejects_unknown_keys_but_drops_enable_truncation() {
        assert!(serde_json::from_str::<Content>(r#"{"type":"text","text":"a","x":1}"#).is_err());
        assert!(serde_json::from_str::<TextContent>(r#"{"text":"a","x":1}"#).is_err());
        let c: Content =
            serde_json::from_str(r#"{"type":"text","text":"a","enable_truncation":true}"#).unwrap();
        assert_eq!(c, Content::text("a"));
    }

    #[test]
    fn text_requires_string_text() {
        assert!(serde_json::from_str::<Content>(r#"{"type":"text"}"#).is_err());
        assert!(serde_json::from_str::<Content>(r#"{"type":"text","text":1}"#).is_err());
    }

    #[test]
    fn image_ignores_unknown_keys() {
        let c: Content =
            serde_json::from_str(r#"{"type":"image","image_urls":["u"],"detail":"x"}"#).unwrap();
        assert_eq!(c, Content::image(vec!["u".into()]));
        let c: Content = serde_json::from_str(r#"{"image_urls":["u"]}"#).unwrap();
        assert_eq!(c, Content::image(vec!["u".into()]));
    }

    #[test]
    fn unknown_type_is_an_error() {
        assert!(serde_json::from_str::<Content>(r#"{"type":"audio","text":"a"}"#).is_err());
    }

    #[test]
    fn as_text() {
        assert_eq!(Content::text("x").as_text(), Some("x"));
        assert_eq!(Content::image(vec![]).as_text(), None);
    }
}
