//! Reading a document (plain text, Markdown, HTML, CSV, PDF) into sections, within
//! `ReadingLimits`, where its memory comes back.
//!
//! `read` is the reading itself, every bound checked on the way: a PDF's objects and pages
//! are counted and its text-bearing streams inflated into a counter (never into memory)
//! before any text is extracted, and the characters a document yields are counted as they
//! come. `ChildReader` runs `read` in a child process (`<program> read-document`: the
//! `oratio` binary, or the Lambda's own) whose address space and CPU time `setrlimit`
//! bounds, under a wall-clock deadline, at most one reading per core at a time; when the
//! child exits, whatever a hostile file made it allocate is the system's again.
//! `serve_child` is the child's side.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oratio_core::agents::MAX_DOCUMENT_BYTES;
use oratio_core::knowledge::{DocumentError, DocumentReader, ReadingLimits, Section};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;

/// The argument that makes a program the document reader's child.
pub const CHILD_COMMAND: &str = "read-document";
const TEXT_LINES_PER_SECTION: usize = 40;

/// The sections of a document, by content type (or file extension when the type is
/// generic), within `limits`.
pub fn read(
    content_type: &str,
    title: &str,
    bytes: &[u8],
    limits: &ReadingLimits,
) -> Result<Vec<Section>, DocumentError> {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let extension = title.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let kind = match (essence.as_str(), extension.as_str()) {
        ("application/pdf", _) | (_, "pdf") => "pdf",
        ("text/html", _) | (_, "html" | "htm") => "html",
        ("text/csv", _) | (_, "csv") => "csv",
        ("text/markdown", _) | (_, "md" | "markdown") => "markdown",
        ("text/plain", _) | (_, "txt") => "text",
        _ => {
            return Err(DocumentError::Unsupported {
                message: format!("{content_type} is not a supported document type"),
            });
        }
    };
    // Text yields at most a character a byte; over the bound by far, it is not even parsed.
    if kind != "pdf" && bytes.len() > limits.characters.saturating_mul(4) {
        return Err(too_many_characters(limits));
    }
    let text = || std::str::from_utf8(bytes).map_err(|_| DocumentError::unreadable("the text is not UTF-8"));
    let sections = match kind {
        "pdf" => pdf_sections(bytes, limits)?,
        "html" => markdown_sections(&html_to_text(text()?)),
        "csv" => csv_sections(bytes)?,
        "markdown" => markdown_sections(text()?),
        _ => text_sections(text()?),
    };
    if sections.iter().map(|s| s.text.chars().count()).sum::<usize>() > limits.characters {
        return Err(too_many_characters(limits));
    }
    if sections.iter().all(|s| s.text.trim().is_empty()) {
        return Err(DocumentError::unreadable("it holds no text"));
    }
    Ok(sections)
}

fn too_many_characters(limits: &ReadingLimits) -> DocumentError {
    DocumentError::over(
        "characters",
        format!(
            "it holds more than {} characters of text (the limit per document)",
            thousands(limits.characters as u64)
        ),
    )
}

fn pdf_sections(bytes: &[u8], limits: &ReadingLimits) -> Result<Vec<Section>, DocumentError> {
    use pdf_extract::{Document, Object, PlainTextOutput, output_doc_page};
    // The PDF library panics on some malformed files: a panic is an unreadable document.
    let quietly = |f: &mut dyn FnMut() -> Result<Vec<Section>, DocumentError>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(DocumentError::unreadable("the PDF is malformed")))
    };
    quietly(&mut || {
        let mut document =
            Document::load_mem(bytes).map_err(|e| DocumentError::unreadable(format!("the PDF is unreadable ({e})")))?;
        if document.is_encrypted() && document.decrypt("").is_err() {
            return Err(DocumentError::unreadable("the PDF is encrypted with a password"));
        }
        if document.objects.len() > limits.objects {
            return Err(DocumentError::over(
                "objects",
                format!("the PDF has more than {} objects (the limit per document)", thousands(limits.objects as u64)),
            ));
        }
        let pages = document.get_pages();
        if pages.len() > limits.pages {
            return Err(DocumentError::over(
                "pages",
                format!("the PDF has more than {} pages (the limit per document)", thousands(limits.pages as u64)),
            ));
        }
        let mut inflated = 0u64;
        for object in document.objects.values() {
            let Object::Stream(stream) = object else { continue };
            let image = stream.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|n| n == b"Image");
            let flate = stream.filters().is_ok_and(|f| f.iter().any(|f| *f == b"FlateDecode" || *f == b"Fl"));
            if image || !flate {
                inflated += if image { 0 } else { stream.content.len() as u64 };
            } else {
                let budget = limits.inflated_bytes.saturating_sub(inflated) + 1;
                let mut decoder = flate2::read::ZlibDecoder::new(stream.content.as_slice()).take(budget);
                // A broken stream inflates as far as it goes, as the reader would.
                inflated += std::io::copy(&mut decoder, &mut std::io::sink()).unwrap_or(0);
            }
            if inflated > limits.inflated_bytes {
                return Err(DocumentError::over(
                    "inflated_bytes",
                    format!(
                        "the PDF's text inflates to more than {} MiB (the limit on decompressed content)",
                        limits.inflated_bytes / (1024 * 1024)
                    ),
                ));
            }
        }
        let mut sections = Vec::new();
        let mut characters = 0;
        for number in pages.keys() {
            let mut text = String::new();
            // A page the library cannot render has no text; the rest of the document still counts.
            let _ = output_doc_page(&document, &mut PlainTextOutput::new(&mut text), *number);
            characters += text.chars().count();
            if characters > limits.characters {
                return Err(too_many_characters(limits));
            }
            sections.push(Section { location: format!("page {number}"), text });
        }
        Ok(sections)
    })
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What the parent sends the child, on one line before the document's bytes.
#[derive(Serialize, Deserialize)]
struct ChildRequest {
    content_type: String,
    title: String,
    limits: ReadingLimits,
}

/// Reads documents in child processes of `program` (see the module's comment).
pub struct ChildReader {
    program: PathBuf,
    limits: ReadingLimits,
    slots: Arc<Semaphore>,
}

impl ChildReader {
    /// Children of `program`, which must answer `program read-document` with `serve_child`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self { program: program.into(), limits: ReadingLimits::default(), slots: Arc::new(Semaphore::new(cores)) }
    }

    /// Children of the running program (`oratio`, or a Lambda binary that serves them).
    pub fn of_this_program() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    pub fn with_limits(mut self, limits: ReadingLimits) -> Self {
        self.limits = limits;
        self
    }

    async fn run(&self, content_type: &str, title: &str, bytes: Vec<u8>) -> Result<Vec<Section>, DocumentError> {
        let failed = |what: &str, e: std::io::Error| DocumentError::Failed { message: format!("{what}: {e}") };
        let mut child = tokio::process::Command::new(&self.program)
            .arg(CHILD_COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed("starting the document reader", e))?;
        let request = ChildRequest { content_type: content_type.into(), title: title.into(), limits: self.limits };
        let mut input = serde_json::to_vec(&request).unwrap_or_default();
        input.push(b'\n');
        input.extend_from_slice(&bytes);
        let mut stdin = child.stdin.take().ok_or_else(|| DocumentError::Failed { message: "no stdin".into() })?;
        // A child that stops reading (it died) is judged by how it ended, below.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
        let output = child.wait_with_output().await.map_err(|e| failed("waiting for the document reader", e))?;
        if output.status.success() {
            return serde_json::from_slice::<Result<Vec<Section>, DocumentError>>(&output.stdout).unwrap_or_else(|e| {
                Err(DocumentError::Failed { message: format!("the document reader answered badly: {e}") })
            });
        }
        use std::os::unix::process::ExitStatusExt as _;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Out of address space, Rust aborts ("memory allocation of … failed"); over its CPU
        // time, the kernel sends SIGXCPU, then SIGKILL.
        const SIGKILL: i32 = 9;
        const SIGXCPU: i32 = 24;
        if stderr.contains("memory allocation") || stderr.contains("out of memory") {
            Err(self.over_memory())
        } else if matches!(output.status.signal(), Some(SIGXCPU | SIGKILL)) {
            Err(self.over_time())
        } else {
            tracing::warn!(status = %output.status, stderr = %stderr.trim(), "the document reader failed");
            Err(DocumentError::Failed { message: "the document reader failed".into() })
        }
    }

    fn over_memory(&self) -> DocumentError {
        DocumentError::over(
            "memory_bytes",
            format!(
                "reading it needs more than {} MiB of memory (the limit per document)",
                self.limits.memory_bytes / (1024 * 1024)
            ),
        )
    }

    fn over_time(&self) -> DocumentError {
        DocumentError::over(
            "seconds",
            format!("reading it takes longer than {} s (the limit per document)", self.limits.seconds),
        )
    }
}

#[async_trait]
impl DocumentReader for ChildReader {
    async fn read(&self, content_type: &str, title: &str, bytes: Vec<u8>) -> Result<Vec<Section>, DocumentError> {
        let _slot =
            self.slots.acquire().await.map_err(|_| DocumentError::Failed { message: "shutting down".into() })?;
        let deadline = Duration::from_secs(self.limits.seconds);
        // Past the deadline the child is dropped, which kills it.
        tokio::time::timeout(deadline, self.run(content_type, title, bytes))
            .await
            .unwrap_or_else(|_| Err(self.over_time()))
    }
}

/// Reads in this process, within the limits but without the child's walls (unit tests,
/// tools; never a server).
pub struct InProcessReader(pub ReadingLimits);

#[async_trait]
impl DocumentReader for InProcessReader {
    async fn read(&self, content_type: &str, title: &str, bytes: Vec<u8>) -> Result<Vec<Section>, DocumentError> {
        let (content_type, title, limits) = (content_type.to_owned(), title.to_owned(), self.0);
        tokio::task::spawn_blocking(move || read(&content_type, &title, &bytes, &limits))
            .await
            .unwrap_or_else(|_| Err(DocumentError::unreadable("the document could not be read")))
    }
}

/// The child's side of `ChildReader`: limits itself, reads one document from stdin and
/// writes the result to stdout as JSON. Call it first thing in `main`, before any runtime
/// starts threads, when the first argument is `read-document`.
pub fn serve_child() -> ExitCode {
    let mut input = std::io::stdin().lock();
    let mut line = String::new();
    let request: ChildRequest = match input.read_line(&mut line).ok().and_then(|_| serde_json::from_str(&line).ok()) {
        Some(request) => request,
        None => {
            eprintln!("read-document: expected a JSON request line on stdin");
            return ExitCode::from(2);
        }
    };
    let limits = request.limits;
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |n: u64| Rlimit { current: Some(n), maximum: Some(n) };
    if let Err(e) = setrlimit(Resource::As, limit(limits.memory_bytes))
        .and_then(|()| setrlimit(Resource::Cpu, limit(limits.seconds + 1)))
    {
        eprintln!("read-document: cannot limit this process: {e}");
        return ExitCode::from(2);
    }
    let mut bytes = Vec::new();
    if let Err(e) = input.take(MAX_DOCUMENT_BYTES as u64 + 1).read_to_end(&mut bytes) {
        eprintln!("read-document: reading stdin: {e}");
        return ExitCode::from(2);
    }
    let result = if bytes.len() > MAX_DOCUMENT_BYTES {
        Err(DocumentError::over("bytes", format!("it is larger than {} MB", MAX_DOCUMENT_BYTES / (1024 * 1024))))
    } else {
        read(&request.content_type, &request.title, &bytes, &limits)
    };
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, &result).map_err(std::io::Error::from).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("read-document: writing the result: {e}");
            ExitCode::FAILURE
        }
    }
}

fn text_sections(text: &str) -> Vec<Section> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(TEXT_LINES_PER_SECTION)
        .enumerate()
        .map(|(i, block)| {
            let first = i * TEXT_LINES_PER_SECTION + 1;
            Section { location: format!("lines {first}-{}", first + block.len() - 1), text: block.join("\n") }
        })
        .collect()
}

/// Sections under Markdown headings; the location is the heading (or `introduction`).
fn markdown_sections(text: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut location = "introduction".to_owned();
    let mut body = String::new();
    for line in text.lines() {
        if let Some(heading) = line.trim_start().strip_prefix('#') {
            if !body.trim().is_empty() {
                sections.push(Section { location: location.clone(), text: std::mem::take(&mut body) });
            }
            body.clear();
            location = heading.trim_start_matches('#').trim().to_owned();
            body.push_str(&location);
            body.push('\n');
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    if !body.trim().is_empty() {
        sections.push(Section { location, text: body });
    }
    sections
}

/// HTML as Markdown-ish text: headings kept as `#` lines, blocks as lines, scripts and
/// styles dropped, entities decoded.
fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(open) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&decode_entities(&rest[..open]));
        }
        let Some(close) = rest[open..].find('>') else { break };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        rest = &rest[open + close + 1..];
        if let Some(end) = skip_until {
            if tag.starts_with('/') && name == end {
                skip_until = None;
            }
            continue;
        }
        match name.as_str() {
            "script" | "style" | "head" if !tag.starts_with('/') => {
                skip_until = Some(if name == "script" {
                    "script"
                } else if name == "style" {
                    "style"
                } else {
                    "head"
                })
            }
            "h1" | "h2" | "h3" | "h4" if !tag.starts_with('/') => out.push_str("\n# "),
            "p" | "div" | "br" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "section" | "article" | "ul" | "ol"
            | "table" => out.push('\n'),
            "td" | "th" => out.push(' '),
            _ => {}
        }
    }
    if skip_until.is_none() {
        out.push_str(&decode_entities(rest));
    }
    out
}

fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Each row as `column: value; …`, a section of its own, so an answer can cite the row
/// (counting the header as row 1, as a spreadsheet does).
fn csv_sections(bytes: &[u8]) -> Result<Vec<Section>, DocumentError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| DocumentError::unreadable(format!("the CSV is malformed ({e})")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut sections = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| DocumentError::unreadable(format!("the CSV is malformed ({e})")))?;
        let line: Vec<String> = headers
            .iter()
            .zip(record.iter())
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(h, v)| format!("{}: {}", h.trim(), v.trim()))
            .collect();
        if !line.is_empty() {
            sections.push(Section { location: format!("row {}", i + 2), text: line.join("; ") });
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_sections_follow_headings() {
        let sections =
            markdown_sections("Intro line\n# Opening hours\nWe open at 9.\n## Parking\nFree parking behind.\n");
        let locations: Vec<&str> = sections.iter().map(|s| s.location.as_str()).collect();
        assert_eq!(locations, ["introduction", "Opening hours", "Parking"]);
        assert!(sections[1].text.contains("We open at 9."));
    }

    #[test]
    fn html_loses_markup_scripts_and_entities() {
        let text = html_to_text(
            "<html><head><title>x</title><style>p{}</style></head><body><h2>Prices</h2><p>Cleaning &amp; polish: &pound;40</p><script>alert(1)</script><p>Fillings from 90</p></body></html>",
        );
        let sections = markdown_sections(&text);
        assert_eq!(sections.last().map(|s| s.location.as_str()), Some("Prices"));
        assert!(text.contains("Cleaning & polish") && text.contains("Fillings from 90"));
        assert!(!text.contains("alert") && !text.contains("p{}"));
    }

    #[test]
    fn csv_rows_become_labelled_rows() {
        let sections = csv_sections(b"service,price\nCleaning,40\n\"Whitening, full\",250\n").unwrap();
        assert_eq!(sections[0].location, "row 2");
        assert_eq!(sections[0].text, "service: Cleaning; price: 40");
        assert_eq!(sections[1].location, "row 3");
        assert_eq!(sections[1].text, "service: Whitening, full; price: 250");
    }

    #[test]
    fn unsupported_and_unreadable_documents_say_why() {
        let limits = ReadingLimits::default();
        let message = |ct: &str, title: &str, bytes: &[u8]| read(ct, title, bytes, &limits).unwrap_err().to_string();
        assert!(message("image/png", "x.png", b"\x89PNG").contains("not a supported"));
        assert!(message("application/pdf", "x.pdf", b"%PDF-1.4 garbage").contains("PDF"));
        assert!(message("text/plain", "x.txt", b"\xff\xfe").contains("UTF-8"));
        assert!(message("text/plain", "x.txt", b"   \n ").contains("no text"));
    }

    #[test]
    fn text_over_the_character_limit_is_refused_naming_it() {
        let limits = ReadingLimits { characters: 1_000, ..ReadingLimits::default() };
        let csv = format!("item,price\n{}", "cake,3.50\n".repeat(200));
        match read("text/csv", "prices.csv", csv.as_bytes(), &limits) {
            Err(DocumentError::OverLimit { limit, message }) => {
                assert_eq!(limit, "characters");
                assert!(message.contains("1,000 characters"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(read("text/csv", "prices.csv", b"item,price\ncake,3.50\n", &limits).is_ok());
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(2_000_000), "2,000,000");
        assert_eq!(thousands(16_777_216), "16,777,216");
    }
}
