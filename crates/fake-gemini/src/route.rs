//! Request classification: path → endpoint, query parameters, API key.
//!
//! Done by hand rather than with a router because Gemini paths put the
//! method after a colon inside a segment (`models/{model}:generateContent`).

use http::{HeaderMap, Method};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Native<'a> {
    ListModels,
    GetModel(&'a str),
    Generate(&'a str),
    Stream(&'a str),
    CountTokens(&'a str),
    Embed(&'a str),
    BatchEmbed(&'a str),
    /// `GET files/{name}`: no file exists here, so every name is refused.
    GetFile(&'a str),
    /// Anything under `corpora`: OAuth only, an API key is refused.
    Corpora,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenAi<'a> {
    Chat,
    Embeddings,
    ListModels,
    GetModel(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `version` is "v1beta" or "v1", echoed in not-found messages.
    Native {
        version: &'a str,
        endpoint: Native<'a>,
    },
    OpenAi(OpenAi<'a>),
    /// Unknown path or wrong method; `openai` selects the error shape.
    NotFound {
        openai: bool,
    },
}

impl Route<'_> {
    /// OpenAI-compatible routes wrap errors in a one-element array.
    pub fn is_openai(&self) -> bool {
        matches!(self, Route::OpenAi(_) | Route::NotFound { openai: true })
    }
}

pub fn parse<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let Some((version, rest)) = path
        .strip_prefix("/v1beta/")
        .map(|r| ("v1beta", r))
        .or_else(|| path.strip_prefix("/v1/").map(|r| ("v1", r)))
    else {
        return Route::NotFound { openai: false };
    };
    let get = method == Method::GET;
    let post = method == Method::POST;
    if let Some(oa) = rest.strip_prefix("openai/") {
        let r = match oa {
            "chat/completions" if post => Some(OpenAi::Chat),
            "embeddings" if post => Some(OpenAi::Embeddings),
            "models" if get => Some(OpenAi::ListModels),
            _ => oa
                .strip_prefix("models/")
                .filter(|id| get && !id.is_empty())
                .map(OpenAi::GetModel),
        };
        return r.map_or(Route::NotFound { openai: true }, Route::OpenAi);
    }
    let endpoint = if rest == "corpora" || rest.starts_with("corpora/") {
        Some(Native::Corpora)
    } else if let Some(name) = rest.strip_prefix("files/") {
        (get && !name.is_empty()).then_some(Native::GetFile(name))
    } else if rest == "models" {
        get.then_some(Native::ListModels)
    } else if let Some(m) = rest.strip_prefix("models/") {
        native_model_route(m, get, post)
    } else {
        None
    };
    endpoint.map_or(Route::NotFound { openai: false }, |endpoint| Route::Native {
        version,
        endpoint,
    })
}

fn native_model_route(rest: &str, get: bool, post: bool) -> Option<Native<'_>> {
    let Some((model, action)) = rest.rsplit_once(':') else {
        return (get && !rest.is_empty() && !rest.contains('/')).then_some(Native::GetModel(rest));
    };
    if !post || model.is_empty() || model.contains('/') {
        return None;
    }
    Some(match action {
        "generateContent" => Native::Generate(model),
        "streamGenerateContent" => Native::Stream(model),
        "countTokens" => Native::CountTokens(model),
        "embedContent" => Native::Embed(model),
        "batchEmbedContents" => Native::BatchEmbed(model),
        _ => return None,
    })
}

/// First value of query parameter `name` (no percent-decoding: the values we
/// read — `alt`, `pageSize`, our own page tokens — never need it).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// `%XX` escapes decoded, as Google does before echoing a resource name; invalid
/// escapes and non-UTF-8 results are kept as they came.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// True if the URL carries an API key, which the proxy must never do. Like
/// Google, names are percent-decoded first (`%6Bey` is `key`) and the system
/// parameter's `$key` spelling counts too.
pub fn has_key_param(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = decode_name(pair.split_once('=').map_or(pair, |(k, _)| k));
            name == b"key" || name == b"$key"
        })
    })
}

fn decode_name(name: &str) -> Vec<u8> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Upstream key: `x-goog-api-key` first, then `Authorization: Bearer`.
pub fn api_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-goog-api-key") {
        return v.to_str().ok().filter(|k| !k.is_empty());
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = auth.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_native_and_openai_paths() {
        let p = |m: &Method, s: &'static str| parse(m, s);
        assert_eq!(
            p(&Method::POST, "/v1beta/models/gemini-2.5-flash:generateContent"),
            Route::Native {
                version: "v1beta",
                endpoint: Native::Generate("gemini-2.5-flash")
            }
        );
        assert_eq!(
            p(&Method::GET, "/v1/models"),
            Route::Native {
                version: "v1",
                endpoint: Native::ListModels
            }
        );
        assert_eq!(
            p(&Method::GET, "/v1beta/openai/models/models/gemini-2.5-pro"),
            Route::OpenAi(OpenAi::GetModel("models/gemini-2.5-pro"))
        );
        assert_eq!(
            p(&Method::GET, "/v1beta/models/x:generateContent"),
            Route::NotFound { openai: false }
        );
        assert_eq!(p(&Method::GET, "/nope"), Route::NotFound { openai: false });
        assert!(p(&Method::GET, "/v1beta/openai/nope").is_openai());
    }

    #[test]
    fn query_helpers() {
        assert!(has_key_param(Some("alt=sse&key=abc")));
        assert!(has_key_param(Some("key")));
        assert!(!has_key_param(Some("apikey=1&monkey=2")));
        assert!(has_key_param(Some("alt=sse&%6Bey=abc")));
        assert!(has_key_param(Some("%24key=abc")));
        assert!(has_key_param(Some("$key=abc")));
        assert!(!has_key_param(Some("%6B=1&ke%")));
        assert_eq!(query_param(Some("alt=sse&pageSize=2"), "pageSize"), Some("2"));
        assert_eq!(query_param(None, "alt"), None);
        assert_eq!(percent_decode("API%20key%2x%"), "API key%2x%");
        assert_eq!(
            parse(&Method::GET, "/v1beta/files/a%20b"),
            Route::Native {
                version: "v1beta",
                endpoint: Native::GetFile("a%20b")
            }
        );
        assert_eq!(
            parse(&Method::POST, "/v1beta/corpora"),
            Route::Native {
                version: "v1beta",
                endpoint: Native::Corpora
            }
        );
    }
}
