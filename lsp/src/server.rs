//! The message loop: one thread, one message at a time.
//!
//! Compiling a rules directory takes milliseconds, so requests are answered
//! in order on this thread; there is nothing to cancel. Diagnostics are
//! published when the queue is empty: a burst of `didChange` (typing fast,
//! a paste) costs one compile, not one per keystroke.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use crossbeam_channel::TryRecvError;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CodeActionKind, CodeActionOptions, CodeActionProviderCapability, CompletionOptions, Diagnostic,
    FoldingRangeProviderCapability, GotoDefinitionResponse, HoverProviderCapability, InitializeParams, OneOf,
    PublishDiagnosticsParams, RenameOptions, SemanticTokensFullOptions, SemanticTokensOptions, SemanticTokensResult,
    SemanticTokensServerCapabilities, ServerCapabilities, ServerInfo, TextDocumentSyncCapability, TextDocumentSyncKind,
    TextDocumentSyncOptions, TextDocumentSyncSaveOptions, Uri, WorkDoneProgressOptions,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::convert::LineIndex;
use crate::documents::Documents;
use crate::features::{completion, diagnostics, folding, formatting, hover, navigation, rename, semantic, symbols};
use crate::workspace::{self, uri_to_path, Analysis, ProgramKey};

/// How the session ended, for the process's exit code (LSP: 0 after
/// `shutdown` then `exit`, 1 for `exit` without `shutdown` or a lost client).
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    Clean,
    Abrupt,
}

pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::INCREMENTAL),
            save: Some(TextDocumentSyncSaveOptions::Supported(true)),
            ..TextDocumentSyncOptions::default()
        })),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        workspace_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), ":".into(), "|".into(), " ".into()]),
            ..CompletionOptions::default()
        }),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..CodeActionOptions::default()
        })),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        folding_range_provider: Some(FoldingRangeProviderCapability::Simple(true)),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: semantic::legend(),
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                work_done_progress_options: WorkDoneProgressOptions::default(),
            },
        )),
        ..ServerCapabilities::default()
    }
}

pub struct Server {
    connection: Connection,
    documents: Documents,
    /// The workspace folders: a program never reaches above one.
    roots: Vec<PathBuf>,
    /// The program of each open document.
    programs: HashMap<Uri, ProgramKey>,
    /// Compiled programs, dropped when one of their files changes.
    analyses: HashMap<ProgramKey, Analysis>,
    /// Programs whose diagnostics must be published when the queue is empty.
    dirty: BTreeSet<ProgramKey>,
    /// What each URI was last told, so unchanged files are not re-sent.
    published: HashMap<Uri, Vec<Diagnostic>>,
    shutdown: bool,
}

/// Runs the protocol on `connection` until `exit`.
pub fn run(connection: Connection) -> Result<Ending, String> {
    let (id, params) = connection.initialize_start().map_err(|e| e.to_string())?;
    let params: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": ServerInfo { name: "mon".into(), version: Some(env!("CARGO_PKG_VERSION").into()) },
    });
    connection.initialize_finish(id, result).map_err(|e| e.to_string())?;
    let mut server = Server {
        connection,
        documents: Documents::default(),
        roots: workspace_roots(&params),
        programs: HashMap::new(),
        analyses: HashMap::new(),
        dirty: BTreeSet::new(),
        published: HashMap::new(),
        shutdown: false,
    };
    Ok(server.main_loop())
}

#[allow(deprecated)] // `root_uri` is what older clients send.
fn workspace_roots(params: &InitializeParams) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> =
        params.workspace_folders.iter().flatten().filter_map(|f| uri_to_path(&f.uri)).collect();
    if roots.is_empty() {
        roots.extend(params.root_uri.as_ref().and_then(uri_to_path));
    }
    roots
}

impl Server {
    fn main_loop(&mut self) -> Ending {
        loop {
            let message = if self.dirty.is_empty() {
                match self.connection.receiver.recv() {
                    Ok(m) => m,
                    Err(_) => return Ending::Abrupt,
                }
            } else {
                match self.connection.receiver.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        self.guarded(|s| s.publish_dirty());
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return Ending::Abrupt,
                }
            };
            match message {
                Message::Request(request) => self.on_request(request),
                Message::Notification(n) if n.method == note::Exit::METHOD => {
                    return if self.shutdown { Ending::Clean } else { Ending::Abrupt };
                }
                Message::Notification(n) => {
                    self.guarded(|s| s.on_notification(n));
                }
                // The server sends no requests, so expects no responses.
                Message::Response(_) => {}
            }
        }
    }

    /// Runs `f`, surviving a panic: a bug in a feature must cost one answer,
    /// not the editor's session. The cache may be half-updated, so drop it.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(value) => Some(value),
            Err(_) => {
                self.analyses.clear();
                self.dirty.clear();
                None
            }
        }
    }

    fn send(&self, message: impl Into<Message>) {
        // A closed connection ends the loop at the next receive.
        let _ = self.connection.sender.send(message.into());
    }

    fn on_request(&mut self, request: Request) {
        let id = request.id.clone();
        let response = if self.shutdown {
            Response::new_err(id, ErrorCode::InvalidRequest as i32, "the server is shutting down".into())
        } else if request.method == req::Shutdown::METHOD {
            self.shutdown = true;
            Response::new_ok(id, ())
        } else {
            match self.guarded(|s| s.answer(&request)) {
                Some(Ok(value)) => Response { id, result: Some(value), error: None },
                Some(Err((code, message))) => Response::new_err(id, code as i32, message),
                None => Response::new_err(id, ErrorCode::InternalError as i32, "internal error".into()),
            }
        };
        self.send(response);
    }

    fn answer(&mut self, request: &Request) -> Result<Value, (ErrorCode, String)> {
        let method = request.method.as_str();
        let to_json = |v: serde_json::Result<Value>| v.map_err(|e| (ErrorCode::InternalError, e.to_string()));
        match method {
            req::HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = params(request)?;
                let at = &p.text_document_position_params;
                let hover = self.at_position(&at.text_document.uri, at.position, hover::hover);
                to_json(serde_json::to_value(hover.flatten()))
            }
            req::GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = params(request)?;
                let at = &p.text_document_position_params;
                let found = self.at_position(&at.text_document.uri, at.position, navigation::definition);
                let response = found.filter(|l| !l.is_empty()).map(GotoDefinitionResponse::Array);
                to_json(serde_json::to_value(response))
            }
            req::References::METHOD => {
                let p: lsp_types::ReferenceParams = params(request)?;
                let at = &p.text_document_position;
                let include = p.context.include_declaration;
                let found = self.at_position(&at.text_document.uri, at.position, |a, f, o| {
                    navigation::references(a, f, o, include)
                });
                to_json(serde_json::to_value(found.unwrap_or_default()))
            }
            req::Completion::METHOD => {
                let p: lsp_types::CompletionParams = params(request)?;
                let at = &p.text_document_position;
                let found = self.at_position(&at.text_document.uri, at.position, |a, f, o| {
                    let text = a.sources.get(f).map_or("", |s| s.text.as_str());
                    completion::complete(&a.compilation.files, f, text, o)
                });
                to_json(serde_json::to_value(found.unwrap_or_default()))
            }
            req::Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = params(request)?;
                let edits = self.text_of(&p.text_document.uri).and_then(|t| formatting::format(&t));
                to_json(serde_json::to_value(edits))
            }
            req::CodeActionRequest::METHOD => {
                let p: lsp_types::CodeActionParams = params(request)?;
                let uri = p.text_document.uri;
                let actions = self.analysis(&uri).map(|a| diagnostics::code_actions(a, &uri, p.range));
                to_json(serde_json::to_value(actions.unwrap_or_default()))
            }
            req::DocumentSymbolRequest::METHOD => {
                let p: lsp_types::DocumentSymbolParams = params(request)?;
                let uri = p.text_document.uri;
                let found = self.analysis(&uri).and_then(|a| {
                    let file = a.file_index(&uri)?;
                    Some(symbols::document(a.compilation.files.get(file)?, &a.sources.get(file)?.text))
                });
                to_json(serde_json::to_value(found.map(lsp_types::DocumentSymbolResponse::Nested)))
            }
            req::WorkspaceSymbolRequest::METHOD => {
                let p: lsp_types::WorkspaceSymbolParams = params(request)?;
                let keys: BTreeSet<ProgramKey> = self.programs.values().cloned().collect();
                for key in &keys {
                    self.ensure(key);
                }
                let analyses: Vec<&Analysis> = keys.iter().filter_map(|k| self.analyses.get(k)).collect();
                to_json(serde_json::to_value(symbols::workspace(&analyses, &p.query)))
            }
            req::PrepareRenameRequest::METHOD => {
                let p: lsp_types::TextDocumentPositionParams = params(request)?;
                let found = self.at_position(&p.text_document.uri, p.position, rename::prepare);
                match found {
                    Some(Ok(response)) => to_json(serde_json::to_value(response)),
                    Some(Err(message)) => Err((ErrorCode::RequestFailed, message)),
                    None => to_json(serde_json::to_value(None::<lsp_types::PrepareRenameResponse>)),
                }
            }
            req::Rename::METHOD => {
                let p: lsp_types::RenameParams = params(request)?;
                let at = &p.text_document_position;
                let new_name = p.new_name.as_str();
                let found =
                    self.at_position(&at.text_document.uri, at.position, |a, f, o| rename::rename(a, f, o, new_name));
                match found {
                    Some(Ok(edit)) => to_json(serde_json::to_value(edit)),
                    Some(Err(message)) => Err((ErrorCode::RequestFailed, message)),
                    None => Err((ErrorCode::RequestFailed, "this document is not part of a program".into())),
                }
            }
            req::FoldingRangeRequest::METHOD => {
                let p: lsp_types::FoldingRangeParams = params(request)?;
                let uri = p.text_document.uri;
                let found = self.analysis(&uri).and_then(|a| {
                    let file = a.file_index(&uri)?;
                    Some(folding::ranges(a.compilation.files.get(file)?, &a.sources.get(file)?.text))
                });
                to_json(serde_json::to_value(found.unwrap_or_default()))
            }
            req::SemanticTokensFullRequest::METHOD => {
                let p: lsp_types::SemanticTokensParams = params(request)?;
                let uri = p.text_document.uri;
                let found = self.analysis(&uri).and_then(|a| Some(semantic::tokens(a, a.file_index(&uri)?)));
                to_json(serde_json::to_value(found.map(SemanticTokensResult::Tokens)))
            }
            _ => Err((ErrorCode::MethodNotFound, format!("unsupported request {method}"))),
        }
    }

    fn on_notification(&mut self, n: Notification) {
        match n.method.as_str() {
            note::DidOpenTextDocument::METHOD => {
                let Ok(p) = n.extract::<lsp_types::DidOpenTextDocumentParams>(note::DidOpenTextDocument::METHOD) else {
                    return;
                };
                let doc = p.text_document;
                self.documents.open(doc.uri.clone(), doc.text, doc.version);
                let key = workspace::program_of(&doc.uri, &self.roots);
                self.programs.insert(doc.uri, key.clone());
                self.touch(key);
            }
            note::DidChangeTextDocument::METHOD => {
                let Ok(p) = n.extract::<lsp_types::DidChangeTextDocumentParams>(note::DidChangeTextDocument::METHOD)
                else {
                    return;
                };
                let uri = p.text_document.uri;
                self.documents.change(&uri, p.text_document.version, p.content_changes);
                if let Some(key) = self.programs.get(&uri).cloned() {
                    self.touch(key);
                }
            }
            note::DidCloseTextDocument::METHOD => {
                let Ok(p) = n.extract::<lsp_types::DidCloseTextDocumentParams>(note::DidCloseTextDocument::METHOD)
                else {
                    return;
                };
                let uri = p.text_document.uri;
                self.documents.close(&uri);
                match self.programs.remove(&uri) {
                    // A document with no file is gone: clear what it showed.
                    Some(key @ ProgramKey::Alone(_)) => {
                        self.analyses.remove(&key);
                        self.published.remove(&uri);
                        let params = PublishDiagnosticsParams::new(uri, Vec::new(), None);
                        self.send(Notification::new(note::PublishDiagnostics::METHOD.into(), params));
                    }
                    // The disk's text takes over again.
                    Some(key) => self.touch(key),
                    None => {}
                }
            }
            note::DidSaveTextDocument::METHOD | note::DidChangeWatchedFiles::METHOD => {
                // Files of other programs may have changed on disk.
                self.analyses.clear();
                let keys: Vec<ProgramKey> = self.programs.values().cloned().collect();
                self.dirty.extend(keys);
            }
            _ => {}
        }
    }

    /// A program's text changed: recompile on next use, republish when idle.
    fn touch(&mut self, key: ProgramKey) {
        self.analyses.remove(&key);
        self.dirty.insert(key);
    }

    fn ensure(&mut self, key: &ProgramKey) {
        if !self.analyses.contains_key(key) {
            let analysis = workspace::analyze(key, &self.documents);
            self.analyses.insert(key.clone(), analysis);
        }
    }

    /// The analysed program holding `uri` (compiled now if needed).
    fn analysis(&mut self, uri: &Uri) -> Option<&Analysis> {
        let key = match self.programs.get(uri) {
            Some(key) => key.clone(),
            None => workspace::program_of(uri, &self.roots),
        };
        self.ensure(&key);
        self.analyses.get(&key)
    }

    /// Runs a position-based feature: the analysis, the file's index in it
    /// and the byte offset of `position`.
    fn at_position<T>(
        &mut self,
        uri: &Uri,
        position: lsp_types::Position,
        feature: impl FnOnce(&Analysis, usize, usize) -> T,
    ) -> Option<T> {
        let analysis = self.analysis(uri)?;
        let file = analysis.file_index(uri)?;
        let offset = LineIndex::new(&analysis.sources.get(file)?.text).offset(position);
        Some(feature(analysis, file, offset))
    }

    /// The current text of a document: the editor's, else the disk's.
    fn text_of(&self, uri: &Uri) -> Option<String> {
        match self.documents.get(uri) {
            Some(doc) => Some(doc.text.clone()),
            None => std::fs::read_to_string(uri_to_path(uri)?).ok(),
        }
    }

    fn publish_dirty(&mut self) {
        let keys = std::mem::take(&mut self.dirty);
        for key in keys {
            self.ensure(&key);
            let Some(analysis) = self.analyses.get(&key) else {
                continue;
            };
            let mut by_file: Vec<(Uri, Vec<Diagnostic>)> = diagnostics::by_file(analysis).into_iter().collect();
            by_file.sort_by(|a, b| a.0.cmp(&b.0));
            for (uri, list) in by_file {
                // Files never reported and still clean need no message.
                let before = self.published.get(&uri);
                let open = self.documents.get(&uri).is_some();
                if before == Some(&list) || (before.is_none() && list.is_empty() && !open) {
                    continue;
                }
                let version = self.documents.get(&uri).map(|d| d.version);
                let params = PublishDiagnosticsParams::new(uri.clone(), list.clone(), version);
                self.send(Notification::new(note::PublishDiagnostics::METHOD.into(), params));
                self.published.insert(uri, list);
            }
        }
    }
}

fn params<P: DeserializeOwned>(request: &Request) -> Result<P, (ErrorCode, String)> {
    serde_json::from_value(request.params.clone()).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
}
