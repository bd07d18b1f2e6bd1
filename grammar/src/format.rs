//! The canonical formatter behind `mon fmt`.
//!
//! [`format`] parses the file and prints its tree again, so the layout depends
//! only on the tree, on where the comments are, on where the author left blank
//! lines and on which items were written on one line. A file with syntax
//! errors is refused (its errors are returned), never half-formatted. The
//! formatter guarantees that formatting is idempotent, that the output parses
//! to the same tree apart from spans and the order of each step's clauses,
//! and that every comment is kept, verbatim and in source order (a `//`
//! comment loses only its trailing blanks).
//!
//! Layout rules:
//!
//! - Two spaces per level; one statement, field, date or enum value per line;
//!   one space between tokens and around binary operators; no column alignment.
//! - An item, record or enum whose source had no line break stays on one line
//!   (`event e { a: int, b: date }`, `workflow w { expect a; then b within 5m }`);
//!   one that spans lines gets one child per line and `}` on its own line.
//! - Blank lines: one is kept wherever the author left one or more between two
//!   items, statements or comments; none at the start or end of a block.
//! - A step's clauses come in a fixed order: where, after, within, by, warn,
//!   not before, every, except, open, settings, `->` outcome (except where
//!   that order would not parse back; see `clause_order`).
//! - Literals are printed canonically: durations largest unit first (`1m30s`,
//!   `0s`), times `HH:MM[:SS]`, dates `YYYY-MM-DD`, integers without `_`,
//!   floats with a `.`, strings re-escaped; timestamps and zones as written.
//! - Comments: one on its own line stays on its own line before what follows
//!   it; one after a node on the same line stays there, two spaces after it;
//!   one after `{` stays after `{`, and so does one between an item's name
//!   and its `{`; one at the end of a block stays before `}`.
//!   A comment inside a node printed on one line moves to its own line before
//!   the node, or behind it when the node has a `///` doc comment (which must
//!   stay directly above the node to remain its doc).

use crate::ast::*;
use crate::SyntaxError;

const INDENT: &str = "  ";

/// Formats a whole file; files with syntax errors are left alone.
pub fn format(src: &str) -> Result<String, Vec<SyntaxError>> {
    let (file, errors) = crate::parse(src);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut printer =
        Printer { src, comments: &file.comments, used: vec![false; file.comments.len()], out: String::new() };
    let spans: Vec<Span> = file.items.iter().map(Item::span).collect();
    printer.lines(0, src.len(), &spans, 0, &mut |p, i| p.item(&file.items[i], 0));
    debug_assert!(printer.used.iter().all(|&u| u), "every comment is printed");
    // A file written with CRLF line endings keeps them.
    let crlf = src.matches("\r\n").count() * 2 > src.matches('\n').count();
    if crlf {
        return Ok(printer.out.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    Ok(printer.out)
}

/// One child of a block, printed: the first line is not indented (the block
/// indents it), later lines carry their own indentation.
struct Rendered {
    text: String,
    /// The source range `{..}` of a block of the node printed over several
    /// lines. Comments inside the node but behind that block must be printed
    /// behind the node, or they would come out before comments they followed.
    body: Option<Span>,
    /// The node has a `///` doc comment, so nothing may come between the two.
    doc: bool,
}

impl Rendered {
    fn line(text: String) -> Self {
        Rendered { text, body: None, doc: false }
    }
}

type Render<'r, 'a> = dyn FnMut(&mut Printer<'a>, usize) -> Rendered + 'r;

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    /// Comments already placed. A comment belongs to the innermost block
    /// that claims it; whatever is left inside a node after printing it is
    /// that node's interior.
    used: Vec<bool>,
    out: String,
}

impl<'a> Printer<'a> {
    // ------------------------------------------------------------ blocks and comments

    /// Prints the children of a block (or of the file), one per line, with
    /// the comments of the region `[from, to)` around them.
    fn lines(&mut self, from: usize, to: usize, kids: &[Span], depth: usize, render: &mut Render<'_, 'a>) {
        let mut prev = from;
        let mut first = true;
        for (i, &span) in kids.iter().enumerate() {
            let span = self.trimmed(span);
            let gap = self.take(prev, span.start);
            prev = self.comment_lines(&gap, prev, depth, &mut first);

            let rendered = render(self, i);
            let interior = self.take(span.start, span.end);
            let (before, mut behind): (Vec<usize>, Vec<usize>) = match rendered.body {
                Some(body) => interior.into_iter().partition(|&c| self.comments[c].span.start < body.start),
                None if rendered.doc => (Vec::new(), interior),
                None => (interior, Vec::new()),
            };
            if !first && self.blank_between(prev, span.start) {
                self.out.push('\n');
            }
            for group in self.groups(&before) {
                self.comment_line(&group, depth);
            }
            self.indent(depth);
            self.out.push_str(&rendered.text);

            let next = kids.get(i + 1).map_or(to, |s| s.start);
            let trailing = self.trailing(span.end, next, i + 1 == kids.len());
            prev = trailing.last().map_or(span.end, |&c| self.comments[c].span.end);
            behind.extend(trailing);
            if !behind.is_empty() {
                self.out.push_str("  ");
                self.out.push_str(&self.joined(&behind));
            }
            self.out.push('\n');
            first = false;
        }
        let footer = self.take(prev, to);
        self.comment_lines(&footer, prev, depth, &mut first);
    }

    /// Prints an expanded block from just after its `{` to its `}`.
    /// `header_from` is where the node owning the block starts when comments
    /// before the `{` must go after it (see [`Rendered::doc`]).
    fn block(
        &mut self,
        header_from: usize,
        open: usize,
        close: usize,
        kids: &[Span],
        depth: usize,
        render: &mut Render<'_, 'a>,
    ) -> String {
        let saved = std::mem::take(&mut self.out);
        let mut header = self.take(header_from, open);
        // Comments on the `{` line stay there unless the first child shares
        // the line: then they are that child's.
        let first_start = kids.first().map_or(close, |s| s.start);
        let mut pos = open + 1;
        let mut same_line = Vec::new();
        for c in self.unused(open + 1, first_start) {
            let span = self.comments[c].span;
            if self.src[pos..span.start].contains('\n') {
                break;
            }
            same_line.push(c);
            pos = span.end;
        }
        if kids.is_empty() || self.src[pos..first_start].contains('\n') {
            for &c in &same_line {
                self.used[c] = true;
            }
            header.extend(same_line);
        }
        if !header.is_empty() {
            self.out.push_str("  ");
            self.out.push_str(&self.joined(&header));
        }
        self.out.push('\n');
        self.lines(open + 1, close, kids, depth + 1, render);
        self.indent(depth);
        self.out.push('}');
        std::mem::replace(&mut self.out, saved)
    }

    /// The comments right behind a node on its last line, unless the next
    /// node starts on that line too (then they are printed before it).
    fn trailing(&mut self, end: usize, next: usize, last: bool) -> Vec<usize> {
        let mut picked = Vec::new();
        let mut pos = end;
        for c in self.unused(end, next) {
            let span = self.comments[c].span;
            if self.src[pos..span.start].contains('\n') {
                break;
            }
            picked.push(c);
            pos = span.end;
        }
        if !last && !self.src[pos..next].contains('\n') {
            return Vec::new();
        }
        for &c in &picked {
            self.used[c] = true;
        }
        picked
    }

    /// Prints comments on their own lines, keeping the author's blank lines
    /// between them; returns where the last one ends.
    fn comment_lines(&mut self, comments: &[usize], mut prev: usize, depth: usize, first: &mut bool) -> usize {
        for group in self.groups(comments) {
            let start = self.comments[group[0]].span.start;
            if !*first && self.blank_between(prev, start) {
                self.out.push('\n');
            }
            self.comment_line(&group, depth);
            prev = self.comments[group[group.len() - 1]].span.end;
            *first = false;
        }
        prev
    }

    fn comment_line(&mut self, group: &[usize], depth: usize) {
        self.indent(depth);
        self.out.push_str(&self.joined(group));
        self.out.push('\n');
    }

    /// Splits comments into the source lines they share: comments that were
    /// on one line stay on one line, which is what keeps a `///` that follows
    /// a block comment from turning into a doc comment.
    fn groups(&self, comments: &[usize]) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &c in comments {
            match groups.last_mut() {
                Some(group)
                    if !self.src[self.comments[group[group.len() - 1]].span.end..self.comments[c].span.start]
                        .contains('\n') =>
                {
                    group.push(c)
                }
                _ => groups.push(vec![c]),
            }
        }
        groups
    }

    fn joined(&self, comments: &[usize]) -> String {
        let texts: Vec<&str> = comments
            .iter()
            .map(|&c| {
                let text = self.comments[c].text.as_str();
                if text.starts_with("//") {
                    text.trim_end()
                } else {
                    text
                }
            })
            .collect();
        texts.join(" ")
    }

    /// The comments starting in `[from, to)` not yet placed, in source order.
    fn unused(&self, from: usize, to: usize) -> Vec<usize> {
        let first = self.comments.partition_point(|c| c.span.start < from);
        (first..self.comments.len())
            .take_while(|&c| self.comments[c].span.start < to)
            .filter(|&c| !self.used[c])
            .collect()
    }

    /// Claims the comments starting in `[from, to)` not yet placed.
    fn take(&mut self, from: usize, to: usize) -> Vec<usize> {
        let found = self.unused(from, to);
        for &c in &found {
            self.used[c] = true;
        }
        found
    }

    fn blank_between(&self, from: usize, to: usize) -> bool {
        from <= to && self.src[from..to].matches('\n').count() >= 2
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str(INDENT);
        }
    }

    /// The first `byte` at or after `from` outside comments. Used for the
    /// braces, which the tree has no spans for; between the known position
    /// and the brace there are only blanks, commas, keywords and comments.
    fn find(&self, from: usize, byte: u8) -> usize {
        let bytes = self.src.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            if let Ok(c) = self.comments.binary_search_by_key(&i, |c| c.span.start) {
                i = self.comments[c].span.end;
                continue;
            }
            if bytes[i] == byte {
                return i;
            }
            i += 1;
        }
        bytes.len()
    }

    /// `span` without the blanks and comments at its end. pest's implicit
    /// skipping puts them inside a rule that ends with an optional part
    /// (`field`, `channel_decl`, `step_stmt`, ...), but they are not part of
    /// the node: a comment there trails the node.
    fn trimmed(&self, span: Span) -> Span {
        let mut end = span.end;
        loop {
            end = span.start + self.src[span.start..end].trim_end_matches([' ', '\t', '\u{FEFF}']).len();
            match self.comments.binary_search_by_key(&end, |c| c.span.end) {
                Ok(c) if self.comments[c].span.start >= span.start && end > span.start => {
                    end = self.comments[c].span.start
                }
                _ => return Span::new(span.start, end),
            }
        }
    }

    fn spans_lines(&self, from: usize, to: usize) -> bool {
        self.src[from..to].contains('\n')
    }

    /// An item or record body: expanded if the source spanned lines, else
    /// `{ a, b }` with `sep` between the children.
    #[allow(clippy::too_many_arguments)]
    fn braced(
        &mut self,
        header_from: usize,
        open: usize,
        close: usize,
        expanded: bool,
        kids: &[Span],
        depth: usize,
        sep: &str,
        render: &mut Render<'_, 'a>,
    ) -> (String, Option<Span>) {
        // An empty block with no comments has nothing to put on its lines.
        if expanded && (!kids.is_empty() || !self.unused(header_from, close).is_empty()) {
            let body = self.block(header_from, open, close, kids, depth, render);
            return (format!("{{{body}"), Some(Span::new(open, close + 1)));
        }
        if kids.is_empty() {
            return ("{}".to_string(), None);
        }
        let parts: Vec<String> = (0..kids.len()).map(|i| render(self, i).text).collect();
        (format!("{{ {} }}", parts.join(sep)), None)
    }

    // ------------------------------------------------------------ items

    fn item(&mut self, item: &Item, depth: usize) -> Rendered {
        match item {
            Item::Event(d) => self.event(d, depth),
            Item::Workflow(d) => {
                let kids: Vec<Span> = d.stmts.iter().map(|s| s.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, "; ", &mut |p, i| {
                        Rendered::line(p.stmt(&d.stmts[i]))
                    });
                Rendered { text: format!("workflow {} {body}", d.name.name), body: span, doc: d.doc.is_some() }
            }
            Item::Channel(d) => {
                let targets: Vec<String> = d
                    .targets
                    .iter()
                    .map(|t| match t {
                        ChannelTarget::Literal(s) => string(&s.value),
                        ChannelTarget::Secret(s) => format!("secret({})", string(&s.value)),
                    })
                    .collect();
                let text = format!("channel {} {} {}", d.name.name, d.kind.name, targets.join(", "));
                Rendered { text, body: None, doc: d.doc.is_some() }
            }
            Item::Calendar(d) => {
                let kids: Vec<Span> = d.dates.iter().map(|s| s.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, ", ", &mut |_, i| {
                        let date = &d.dates[i];
                        Rendered::line(date_text(date.year, date.month, date.day))
                    });
                Rendered { text: format!("calendar {} {body}", d.name.name), body: span, doc: d.doc.is_some() }
            }
            Item::Maintenance(d) => {
                let mut text = format!("maintenance {} ", d.name.name);
                match &d.window {
                    MaintenanceWindow::Weekly { from_day, from, to_day, to, zone } => {
                        text.push_str("every ");
                        if let Some(day) = from_day {
                            text.push_str(&day.name);
                            text.push(' ');
                        }
                        text.push_str(&time_of_day(from));
                        text.push_str(" to ");
                        if let Some(day) = to_day {
                            text.push_str(&day.name);
                            text.push(' ');
                        }
                        text.push_str(&time_of_day(to));
                        push_zone(&mut text, zone);
                    }
                    MaintenanceWindow::Fixed { from, to } => {
                        text.push_str(&format!("from {} to {}", from.text, to.text));
                    }
                }
                if !d.workflows.is_empty() {
                    text.push_str(" for ");
                    text.push_str(&names(&d.workflows, ", "));
                }
                Rendered { text, body: None, doc: d.doc.is_some() }
            }
            Item::Test(d) => {
                let kids: Vec<Span> = d.stmts.iter().map(|s| s.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, "; ", &mut |p, i| {
                        p.test_stmt(&d.stmts[i], depth + 1)
                    });
                Rendered { text: format!("test {} {body}", string(&d.name.value)), body: span, doc: false }
            }
        }
    }

    fn event(&mut self, d: &EventDecl, depth: usize) -> Rendered {
        let doc = d.doc.is_some();
        match &d.body {
            EventBody::Schema(path) => {
                Rendered { text: format!("event {} from {}", d.name.name, string(&path.value)), body: None, doc }
            }
            EventBody::Fields(fields) => {
                let kids: Vec<Span> = fields.iter().map(|f| f.span).collect();
                let open = self.find(d.name.span.end, b'{');
                let expanded = self.spans_lines(d.span.start, d.span.end);
                let (body, span) =
                    self.braced(d.span.start, open, d.span.end - 1, expanded, &kids, depth, ", ", &mut |p, i| {
                        p.field(&fields[i], depth + 1)
                    });
                Rendered { text: format!("event {} {body}", d.name.name), body: span, doc }
            }
        }
    }

    fn field(&mut self, f: &FieldDecl, depth: usize) -> Rendered {
        let doc = f.doc.is_some();
        let suffix = format!("{}{}", if f.ty.optional { "?" } else { "" }, if f.pii { " pii" } else { "" });
        if let TypeKind::Enum(values) = &f.ty.kind {
            let open = self.find(f.ty.span.start, b'{');
            let close = self.find(values.last().map_or(open + 1, |v| v.span.end), b'}');
            if self.spans_lines(open, close) {
                let kids: Vec<Span> = values.iter().map(|v| v.span).collect();
                let (body, span) = self.braced(f.span.start, open, close, true, &kids, depth, ", ", &mut |_, i| {
                    Rendered::line(values[i].name.clone())
                });
                return Rendered { text: format!("{}: enum {body}{suffix}", f.name.name), body: span, doc };
            }
        }
        let ty = match &f.ty.kind {
            TypeKind::Named(name) => name.name.clone(),
            TypeKind::Enum(values) => format!("enum {{ {} }}", names(values, ", ")),
        };
        Rendered { text: format!("{}: {ty}{suffix}", f.name.name), body: None, doc }
    }

    // ------------------------------------------------------------ workflows

    fn stmt(&self, s: &Stmt) -> String {
        match &s.kind {
            StmtKind::Key(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        if f.sources.is_empty() {
                            f.name.name.clone()
                        } else {
                            let sources: Vec<String> = f.sources.iter().map(qualified).collect();
                            format!("{} = {}", f.name.name, sources.join(", "))
                        }
                    })
                    .collect();
                format!("key {}", fields.join(", "))
            }
            StmtKind::GroupBy(fields) => format!("group by {}", names(fields, ", ")),
            StmtKind::Cohort(field) => format!("cohort {}", field.name),
            StmtKind::Timezone(zone) => format!("timezone {}", zone.name),
            StmtKind::Status { color, condition } => format!("status {} when {}", color.name, expr(condition)),
            StmtKind::On { case, action } => format!("on {} {}", case.name, action.name),
            StmtKind::DependsOn(workflows) => format!("depends on {}", names(workflows, ", ")),
            StmtKind::Retain(d) => format!("retain {}", format_duration(d.millis)),
            StmtKind::Aging(buckets) => {
                let buckets: Vec<String> = buckets.iter().map(|d| format_duration(d.millis)).collect();
                format!("aging {}", buckets.join(", "))
            }
            StmtKind::Open(time) => format!("open {}", time_of_day(time)),
            StmtKind::Setting(setting) => setting_text(&setting.kind),
            StmtKind::Step(step) => step_text(step),
        }
    }

    // ------------------------------------------------------------ tests

    fn test_stmt(&mut self, s: &TestStmt, depth: usize) -> Rendered {
        match &s.kind {
            TestStmtKind::At(ts) => Rendered::line(format!("at {}", ts.text)),
            TestStmtKind::AdvanceTo(ts) => Rendered::line(format!("advance to {}", ts.text)),
            TestStmtKind::AdvanceBy(d) => Rendered::line(format!("advance by {}", format_duration(d.millis))),
            TestStmtKind::Event { event, fields, at, id } => {
                let (record, body) = self.record(fields, event.span.end, depth);
                let mut text = format!("event {} {record}", event.name);
                if let Some(at) = at {
                    text.push_str(&format!(" at {}", at.text));
                }
                if let Some(id) = id {
                    text.push_str(&format!(" id {}", string(&id.value)));
                }
                Rendered { text, body, doc: false }
            }
            TestStmtKind::Expect(expectation) => self.expectation(expectation, depth),
        }
    }

    fn expectation(&mut self, e: &Expectation, depth: usize) -> Rendered {
        let mut body = None;
        let text = match e {
            Expectation::Alert { kind, target, key } => {
                let mut text = format!("expect alert {} {}", kind.name, target_text(target));
                if let Some(key) = key {
                    let (record, span) = self.record(key, target.span.end, depth);
                    text.push_str(&format!(" for {record}"));
                    body = span;
                }
                text
            }
            Expectation::Record { kind, target, delay, key } => {
                let mut text = format!("expect {} {}", kind.name, target_text(target));
                if let Some(delay) = delay {
                    text.push_str(&format!(" by {}", format_duration(delay.millis)));
                }
                if let Some(key) = key {
                    let (record, span) = self.record(key, target.span.end, depth);
                    text.push_str(&format!(" for {record}"));
                    body = span;
                }
                text
            }
            Expectation::Status { target, color } => {
                format!("expect status {} {}", target_text(target), color.name)
            }
            Expectation::Stage { workflow, key, stage } => {
                let (record, span) = self.record(key, workflow.span.end, depth);
                body = span;
                format!("expect stage {} for {record} {}", workflow.name, stage.name)
            }
            Expectation::Count { metric, target, op, value, .. } => {
                format!("expect count {} {} {} {value}", metric.name, target_text(target), op.symbol())
            }
            Expectation::No { alert, kind, target } => {
                let mut text = "expect no".to_string();
                if *alert {
                    text.push_str(" alert");
                }
                if let Some(kind) = kind {
                    text.push(' ');
                    text.push_str(&kind.name);
                }
                if let Some(target) = target {
                    text.push(' ');
                    text.push_str(&target_text(target));
                }
                text
            }
        };
        Rendered { text, body, doc: false }
    }

    /// A record literal whose `{` is the first one after `search_from`.
    fn record(&mut self, fields: &[RecordField], search_from: usize, depth: usize) -> (String, Option<Span>) {
        let open = self.find(search_from, b'{');
        let close = self.find(fields.last().map_or(open + 1, |f| f.span.end), b'}');
        let kids: Vec<Span> = fields.iter().map(|f| f.span).collect();
        let expanded = self.spans_lines(open, close);
        self.braced(open, open, close, expanded, &kids, depth, ", ", &mut |_, i| {
            Rendered::line(format!("{}: {}", fields[i].name.name, expr(&fields[i].value)))
        })
    }
}

// ---------------------------------------------------------------- statements

fn setting_text(setting: &SettingKind) -> String {
    match setting {
        SettingKind::Severity(level) => format!("severity {}", level.name),
        SettingKind::Runbook(url) => format!("runbook {}", string(&url.value)),
        SettingKind::Notify { channels, min_severity } => {
            let mut text = format!("notify {}", names(channels, ", "));
            if let Some(level) = min_severity {
                text.push_str(&format!(" when severity >= {}", level.name));
            }
            text
        }
        SettingKind::Renotify(d) => format!("renotify {}", format_duration(d.millis)),
        SettingKind::Grace(d) => format!("grace {}", format_duration(d.millis)),
    }
}

fn step_text(step: &StepDecl) -> String {
    let mut text = match step.form {
        StepForm::Expect | StepForm::Then { .. } => {
            let mut text = match step.form {
                StepForm::Then { maybe: true } => format!("then maybe {}", step.event.name),
                StepForm::Then { maybe: false } => format!("then {}", step.event.name),
                _ => format!("expect {}", step.event.name),
            };
            if let Some(alias) = &step.name {
                text.push_str(&format!(" as {}", alias.name));
            }
            text
        }
        StepForm::Start | StepForm::Step => {
            let keyword = if step.form == StepForm::Start { "start" } else { "step" };
            format!("{keyword} {}: {}", step.step_name().name, step.event.name)
        }
    };
    if let Some(predicate) = &step.predicate {
        text.push_str(" where ");
        text.push_str(&expr(predicate));
    }
    if !step.after.is_empty() {
        text.push_str(" after ");
        text.push_str(&names(&step.after, " | "));
    }
    for clause in clause_order(&step.clauses) {
        text.push(' ');
        text.push_str(&clause_text(&clause.kind));
    }
    if let Some(outcome) = &step.outcome {
        text.push_str(&format!(" -> {}", outcome.name));
    }
    text
}

/// The clauses in canonical order, unless that order would put `notify`
/// right after a clock time without a zone: the grammar would read `notify`
/// as the zone (`reserved` in mon.pest fails to reserve it), so the author's
/// order, which parsed, is kept.
fn clause_order(clauses: &[Clause]) -> Vec<&Clause> {
    let mut sorted: Vec<&Clause> = clauses.iter().collect();
    sorted.sort_by_key(|c| clause_rank(&c.kind));
    let zoneless_time = |c: &Clause| {
        matches!(
            c.kind,
            ClauseKind::By { zone: None, day_offset: None, .. }
                | ClauseKind::WarnAt { zone: None, .. }
                | ClauseKind::NotBeforeTime { zone: None, .. }
        )
    };
    let notify = |c: &Clause| matches!(c.kind, ClauseKind::Setting(SettingKind::Notify { .. }));
    if sorted.windows(2).any(|w| zoneless_time(w[0]) && notify(w[1])) {
        return clauses.iter().collect();
    }
    sorted
}

/// Where a clause goes in a step: timing first, from the tightest to the
/// loosest, then the schedule, then the settings it overrides. The sort is
/// stable, so clauses of one rank keep the author's order.
fn clause_rank(clause: &ClauseKind) -> u8 {
    match clause {
        ClauseKind::Within(_) => 0,
        ClauseKind::By { .. } => 1,
        ClauseKind::Warn(_) | ClauseKind::WarnAt { .. } => 2,
        ClauseKind::NotBefore(_) | ClauseKind::NotBeforeTime { .. } => 3,
        ClauseKind::Every(_) => 4,
        ClauseKind::Except(_) => 5,
        ClauseKind::Open(_) => 6,
        ClauseKind::Setting(_) => 7,
    }
}

fn clause_text(clause: &ClauseKind) -> String {
    match clause {
        ClauseKind::Within(d) => format!("within {}", format_duration(d.millis)),
        ClauseKind::By { time, zone, day_offset } => {
            let mut text = format!("by {}", time_of_day(time));
            push_zone(&mut text, zone);
            if let Some((days, _)) = day_offset {
                text.push_str(&format!(" +{days}d"));
            }
            text
        }
        ClauseKind::Warn(d) => format!("warn {}", format_duration(d.millis)),
        ClauseKind::WarnAt { time, zone } => {
            let mut text = format!("warn at {}", time_of_day(time));
            push_zone(&mut text, zone);
            text
        }
        ClauseKind::NotBefore(d) => format!("not before {}", format_duration(d.millis)),
        ClauseKind::NotBeforeTime { time, zone } => {
            let mut text = format!("not before {}", time_of_day(time));
            push_zone(&mut text, zone);
            text
        }
        ClauseKind::Every(days) => format!("every {}", names(days, ", ")),
        ClauseKind::Except(calendars) => format!("except {}", names(calendars, ", ")),
        ClauseKind::Open(time) => format!("open {}", time_of_day(time)),
        ClauseKind::Setting(setting) => setting_text(setting),
    }
}

fn target_text(target: &Target) -> String {
    match &target.step {
        Some(step) => format!("{}.{}", target.workflow.name, step.name),
        None => target.workflow.name.clone(),
    }
}

fn names(idents: &[Ident], sep: &str) -> String {
    idents.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(sep)
}

fn qualified(q: &QualifiedName) -> String {
    format!("{}.{}", q.qualifier.name, q.name.name)
}

fn push_zone(text: &mut String, zone: &Option<Zone>) {
    if let Some(zone) = zone {
        text.push(' ');
        text.push_str(&zone.name);
    }
}

// ---------------------------------------------------------------- expressions

/// An expression on one line. The author's parentheses are nodes of the
/// tree, so printing the operands in order gives back the same tree.
fn expr(e: &Expr) -> String {
    let mut out = String::new();
    push_expr(&mut out, e);
    out
}

fn push_expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Literal(literal) => out.push_str(&literal_text(literal)),
        ExprKind::Name(name) => out.push_str(&name.name),
        ExprKind::Path(path) => out.push_str(&qualified(path)),
        ExprKind::Call { function, args } => {
            out.push_str(&function.name);
            out.push('(');
            push_list(out, args);
            out.push(')');
        }
        ExprKind::List(items) => {
            out.push('[');
            push_list(out, items);
            out.push(']');
        }
        ExprKind::Unary { op, operand } => {
            out.push_str(match op {
                UnaryOp::Not => "not ",
                UnaryOp::Neg => "-",
            });
            push_expr(out, operand);
        }
        ExprKind::Binary { op, lhs, rhs } => {
            push_expr(out, lhs);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            push_expr(out, rhs);
        }
        ExprKind::Paren(inner) => {
            out.push('(');
            push_expr(out, inner);
            out.push(')');
        }
    }
}

fn push_list(out: &mut String, items: &[Expr]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_expr(out, item);
    }
}

fn literal_text(literal: &Literal) -> String {
    match literal {
        Literal::Int(n) => n.to_string(),
        Literal::Float(x) => float(*x),
        Literal::String(s) => string(s),
        Literal::Bool(b) => b.to_string(),
        Literal::Duration(ms) => format_duration(*ms),
        Literal::Date { year, month, day } => date_text(*year, *month, *day),
        Literal::TimeOfDay { hour, minute, second } => clock(*hour, *minute, *second),
        Literal::Timestamp(text) => text.clone(),
    }
}

// ---------------------------------------------------------------- literals

/// A duration as mon writes it: largest unit first, each unit at most once
/// (`90000` ms is `1m30s`). The formatter, the parser's suggestions and the
/// CLI's reports all use this one.
pub fn format_duration(millis: u64) -> String {
    if millis == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    let mut rest = millis;
    for (unit, name) in [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")] {
        if rest >= unit {
            text.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    text
}

fn time_of_day(t: &TimeOfDay) -> String {
    clock(t.hour, t.minute, t.second)
}

fn clock(hour: u32, minute: u32, second: u32) -> String {
    if second == 0 {
        format!("{hour:02}:{minute:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}")
    }
}

fn date_text(year: i32, month: u32, day: u32) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

/// The shortest text that reads back as the same `f64`, always with a `.`
/// so that it stays a float (`250000.0`, `1.0e21`).
fn float(x: f64) -> String {
    if x.is_infinite() {
        // Only a literal too large for f64 parses to infinity; this one does too.
        return "1.0e999".to_string();
    }
    let text = format!("{x:?}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => format!("{mantissa}.0e{exponent}"),
        Some(_) => text,
        None if text.contains('.') => text,
        None => format!("{text}.0"),
    }
}

fn string(value: &str) -> String {
    let mut text = String::with_capacity(value.len() + 2);
    text.push('"');
    for c in value.chars() {
        match c {
            '"' => text.push_str("\\\""),
            '\\' => text.push_str("\\\\"),
            '\n' => text.push_str("\\n"),
            '\t' => text.push_str("\\t"),
            '\r' => text.push_str("\\r"),
            c if c.is_control() => text.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => text.push(c),
        }
    }
    text.push('"');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_canonical() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(250), "250ms");
        assert_eq!(format_duration(90_000), "1m30s");
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(86_400_000 + 3_600_000 * 2 + 5), "1d2h5ms");
    }

    #[test]
    fn floats_keep_a_point_and_their_value() {
        for x in [0.0, 0.1, 3.25, 250000.0, 1e21, 1.5e-7, 123456789012345680.0] {
            let text = float(x);
            assert!(text.contains('.'), "{text}");
            assert_eq!(text.parse::<f64>().unwrap(), x, "{text}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a \"q\" \\ \n\t\r\u{1}é"), r#""a \"q\" \\ \n\t\r\u{1}é""#);
    }
}
