//! The wire-level checks, one async function each. Every check that sends
//! something starts a fresh worker, so one check's damage never shows up as
//! another's failure.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::manifest::{self, MethodEntry};
use super::session::{Answer, Frame, MAX_FRAME, Observations, Remote, Session, Wait};

/// What the checks run against, and their bounds.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) command: Vec<String>,
    /// How long the worker may take to become ready.
    pub(crate) startup_timeout: Duration,
    /// How long each check may wait for one answer or exit.
    pub(crate) timeout: Duration,
    /// How readiness is detected.
    pub(crate) handshake: HandshakeMode,
    /// A slow, cancellable method and its params, for the cancellation check.
    pub(crate) slow: Option<(String, Value)>,
    /// A listening worker to connect to instead of spawning `command`.
    pub(crate) remote: Option<Remote>,
}

/// How the checker detects readiness, as the pool's `handshake` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HandshakeMode {
    /// The line `READY` or the notification `$/ready`.
    Announce,
    /// A `$/ping` request answered.
    Ping,
    /// Ready at once.
    None,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pass,
    Fail,
    NotApplicable,
}

impl Status {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotApplicable => "n/a",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) check: &'static str,
    pub(crate) status: Status,
    pub(crate) seen: String,
}

type Outcome = (Status, String);

fn pass(seen: impl Into<String>) -> Outcome {
    (Status::Pass, seen.into())
}

fn fail(seen: impl Into<String>) -> Outcome {
    (Status::Fail, seen.into())
}

fn not_applicable(seen: impl Into<String>) -> Outcome {
    (Status::NotApplicable, seen.into())
}

/// How a worker announced itself.
#[derive(Debug, Clone)]
enum Ready {
    Line,
    Notification(Map<String, Value>),
    /// `handshake = ping` or `none`: nothing announced.
    Silent,
}

/// Runs every check in order and returns the report.
pub(crate) async fn run(plan: &Plan) -> Vec<Report> {
    let observations = Arc::new(Observations::default());
    let mut reports = Vec::new();
    let mut push = |check, (status, seen): Outcome| {
        reports.push(Report {
            check,
            status,
            seen,
        });
    };

    let (handshake, manifest_outcome) = handshake_and_manifest(plan, &observations).await;
    // Every other check starts a worker and waits for the same handshake:
    // when it failed once, each would only wait out the startup timeout again.
    let ready = handshake.0 != Status::Fail;
    push("handshake", handshake);
    push("manifest", manifest_outcome);
    let (authentication_outcome, wrong_secret_outcome) = authentication(plan, &observations).await;
    push("authentication", authentication_outcome);
    push("wrong-secret", wrong_secret_outcome);
    macro_rules! check {
        ($name:literal, $check:ident) => {
            push(
                $name,
                if ready {
                    guarded(plan, &observations, $check).await
                } else {
                    fail("not run: the handshake failed")
                },
            )
        };
    }
    check!("ping", ping);
    check!("unknown-method", unknown_method);
    check!("invalid-params", invalid_params);
    check!("malformed-frame", malformed_frame);
    check!("oversized-frame", oversized_frame);
    check!("cancellation", cancellation);
    check!("shutdown", shutdown);
    check!("stdin-eof", stdin_eof);
    push("stdout-isolation", stdout_isolation(&observations));
    reports
}

/// Starts a fresh worker, waits until it is ready, runs one check on it, and
/// kills its process group.
async fn guarded<F>(plan: &Plan, observations: &Arc<Observations>, check: F) -> Outcome
where
    F: AsyncFnOnce(&Plan, &mut Session, &Ready) -> Outcome,
{
    let (mut session, ready) = match start(plan, observations).await {
        Ok(started) => started,
        Err(why) => return fail(format!("the worker did not become ready: {why}")),
    };
    let outcome = check(plan, &mut session, &ready).await;
    session.finish().await;
    outcome
}

async fn start(plan: &Plan, observations: &Arc<Observations>) -> Result<(Session, Ready), String> {
    let mut session = match &plan.remote {
        Some(remote) => {
            Session::connect(
                remote,
                remote.secret.as_ref(),
                plan.startup_timeout,
                observations,
            )
            .await?
        }
        None => Session::spawn(&plan.command, observations)?,
    };
    match handshake(plan, &mut session).await {
        Ok(ready) => Ok((session, ready)),
        Err(why) => {
            // Reaped here, so no process of a failed start outlives the check.
            session.finish().await;
            Err(why)
        }
    }
}

async fn handshake(plan: &Plan, session: &mut Session) -> Result<Ready, String> {
    let deadline = Instant::now() + plan.startup_timeout;
    let ready = match plan.handshake {
        HandshakeMode::None => Ready::Silent,
        HandshakeMode::Ping => {
            let id = session.request("$/ping", None, plan.timeout).await?;
            match session.answer(id, deadline).await {
                Ok(answer) if answer.response.get("result").is_some() => Ready::Silent,
                Ok(answer) => return Err(format!("$/ping answered {}", answer.response)),
                Err((wait, before)) => {
                    return Err(waited(session, &wait, &before, plan.startup_timeout).await);
                }
            }
        }
        HandshakeMode::Announce => loop {
            match session.next_frame(deadline).await {
                Ok(Frame::Ready) => break Ready::Line,
                Ok(Frame::Message(message)) if is_notification(&message, "$/log") => {}
                Ok(Frame::Message(message)) if is_notification(&message, "$/ready") => {
                    match message.get("params") {
                        Some(Value::Object(params)) => break Ready::Notification(params.clone()),
                        other => {
                            return Err(format!(
                                "$/ready params must be an object, got {}",
                                other.map_or_else(|| "none".to_string(), Value::to_string)
                            ));
                        }
                    }
                }
                Ok(Frame::Message(message)) => {
                    return Err(format!(
                        "the first frame was {}, not READY or a $/ready notification",
                        cut(&message.to_string())
                    ));
                }
                Ok(Frame::Invalid { head, why }) => {
                    return Err(format!("the first frame was {why}: {head}"));
                }
                Err(wait) => return Err(waited(session, &wait, &[], plan.startup_timeout).await),
            }
        },
    };
    Ok(ready)
}

fn is_notification(message: &Value, method: &str) -> bool {
    message.get("method") == Some(&json!(method)) && message.get("id").is_none()
}

/// Says why a wait ended without the expected frame.
async fn waited(session: &mut Session, wait: &Wait, before: &[Frame], within: Duration) -> String {
    let mut text = match wait {
        Wait::Timeout => format!("nothing within {within:?}"),
        Wait::Closed => {
            let status = session
                .wait_exit(Instant::now() + Duration::from_secs(2))
                .await;
            match status {
                Some(status) => format!("stdout closed; the worker exited ({status})"),
                None => "stdout closed".to_string(),
            }
        }
    };
    if !before.is_empty() {
        text.push_str(&format!("; before that: {}", describe(before)));
    }
    let tail = session.stderr_tail();
    if !tail.is_empty() {
        text.push_str(&format!("; stderr: {}", cut(&tail)));
    }
    text
}

fn describe(frames: &[Frame]) -> String {
    let parts: Vec<String> = frames
        .iter()
        .take(3)
        .map(|frame| match frame {
            Frame::Ready => "READY".to_string(),
            Frame::Message(m) => cut(&m.to_string()),
            Frame::Invalid { head, why } => format!("{why}: {head}"),
        })
        .collect();
    let mut text = parts.join(", ");
    if frames.len() > 3 {
        text.push_str(&format!(" and {} more", frames.len() - 3));
    }
    text
}

fn cut(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn error_code(response: &Value) -> Option<i64> {
    response.get("error")?.get("code")?.as_i64()
}

/// Checks that a response is the error `code`; returns what was seen otherwise.
fn expect_error(answer: &Answer, code: i64) -> Result<String, String> {
    match error_code(&answer.response) {
        Some(c) if c == code => Ok(format!(
            "{code} {:?}",
            answer.response["error"]["message"]
                .as_str()
                .unwrap_or_default()
        )),
        _ => Err(format!(
            "expected error {code}, got {}",
            cut(&answer.response.to_string())
        )),
    }
}

/// Responses among `frames` other than errors with one of `codes` and one of `ids`.
fn unexpected_responses(frames: &[Frame], ids: &[Value], codes: &[i64]) -> Vec<Frame> {
    frames
        .iter()
        .filter(|frame| match frame {
            Frame::Message(m) if m.get("method").is_some() => false,
            Frame::Message(m) => {
                !(m.get("id").is_some_and(|id| ids.contains(id))
                    && error_code(m).is_some_and(|c| codes.contains(&c)))
            }
            // Reported by the stdout isolation check.
            Frame::Invalid { .. } | Frame::Ready => false,
        })
        .cloned()
        .collect()
}

async fn handshake_and_manifest(
    plan: &Plan,
    observations: &Arc<Observations>,
) -> (Outcome, Outcome) {
    let started = Instant::now();
    let (session, ready) = match start(plan, observations).await {
        Ok(started) => started,
        Err(why) => return (fail(why), fail("no handshake, so no manifest")),
    };
    let took = started.elapsed();
    let handshake = match &ready {
        Ready::Line => pass(format!("READY line after {took:.0?}")),
        Ready::Silent => {
            pass(format!("handshake {:?}: ready after {took:.0?}", plan.handshake).to_lowercase())
        }
        Ready::Notification(params) => match params.get("pid") {
            Some(pid) if pid.as_u64().is_some_and(|p| p > 0) => {
                let mut seen = format!("$/ready after {took:.0?}, pid {pid}");
                if !session.is_remote()
                    && u64::from(session.pid()) != pid.as_u64().unwrap_or_default()
                {
                    seen.push_str(&format!(" (the spawned process is {})", session.pid()));
                }
                pass(seen)
            }
            Some(other) => fail(format!(
                "$/ready: pid must be a positive integer, got {other}"
            )),
            None => fail("$/ready without the required pid"),
        },
    };
    let manifest = match &ready {
        Ready::Line => not_applicable("READY line: no manifest"),
        Ready::Silent => not_applicable("no announcement, so no manifest"),
        Ready::Notification(params) if params.keys().all(|k| k == "pid") => {
            not_applicable("$/ready carries no manifest (pid only)")
        }
        Ready::Notification(params) => match manifest::check(params) {
            Ok(methods) => {
                let with_schema = methods.iter().filter(|m| m.params_schema.is_some()).count();
                let version = params
                    .get("protocol_version")
                    .and_then(Value::as_str)
                    .unwrap_or("1.0 (absent)");
                pass(format!(
                    "protocol {version}, {} methods, {with_schema} with params_schema",
                    methods.len()
                ))
            }
            Err(problems) => fail(problems.join("; ")),
        },
    };
    session.finish().await;
    (handshake, manifest)
}

async fn ping(plan: &Plan, session: &mut Session, _: &Ready) -> Outcome {
    let sent = Instant::now();
    let id = match session.request("$/ping", None, plan.timeout).await {
        Ok(id) => id,
        Err(err) => return fail(err),
    };
    let answer = match session.answer(id, sent + plan.timeout).await {
        Ok(answer) => answer,
        Err((wait, before)) => return fail(waited(session, &wait, &before, plan.timeout).await),
    };
    let took = sent.elapsed();
    let Some(result) = answer.response.get("result") else {
        return fail(format!(
            "$/ping answered with {}",
            cut(&answer.response.to_string())
        ));
    };
    let pid = result.get("pid").and_then(Value::as_u64).filter(|p| *p > 0);
    let Some(pid) = pid else {
        return fail(format!("the result {result} lacks a positive integer pid"));
    };
    match result.get("rss_bytes") {
        None => pass(format!("pid {pid}, no rss_bytes, in {took:.0?}")),
        Some(rss) if rss.as_u64().is_some() => {
            pass(format!("pid {pid}, rss_bytes {rss}, in {took:.0?}"))
        }
        Some(rss) => fail(format!(
            "rss_bytes must be a non-negative integer, got {rss}"
        )),
    }
}

async fn unknown_method(plan: &Plan, session: &mut Session, _: &Ready) -> Outcome {
    let deadline = Instant::now() + plan.timeout;
    let mut seen = Vec::new();
    // An unknown notification is ignored; unknown requests, application or
    // reserved, are answered -32601 with their own id.
    if let Err(err) = session
        .notify(
            "$/conform.unknownNotification",
            Some(json!({"x": 1})),
            plan.timeout,
        )
        .await
    {
        return fail(err);
    }
    for method in ["conform.no_such_method", "$/conform.noSuchMethod"] {
        let id = match session
            .request(method, Some(json!({"x": 1})), plan.timeout)
            .await
        {
            Ok(id) => id,
            Err(err) => return fail(err),
        };
        let answer = match session.answer(id, deadline).await {
            Ok(answer) => answer,
            Err((wait, before)) => {
                return fail(format!(
                    "{method}: {}",
                    waited(session, &wait, &before, plan.timeout).await
                ));
            }
        };
        let stray = unexpected_responses(&answer.before, &[], &[]);
        if !stray.is_empty() {
            return fail(format!(
                "answered what needs no answer (a notification): {}",
                describe(&stray)
            ));
        }
        match expect_error(&answer, -32601) {
            Ok(text) => seen.push(format!("{method}: {text} with id {id}")),
            Err(why) => return fail(format!("{method}: {why}")),
        }
    }
    pass(seen.join("; "))
}

async fn invalid_params(plan: &Plan, session: &mut Session, ready: &Ready) -> Outcome {
    let Ready::Notification(params) = ready else {
        return not_applicable("no manifest, so no method with a params_schema to call");
    };
    let methods: Vec<MethodEntry> = match manifest::check(params) {
        Ok(methods) => methods,
        Err(_) => return not_applicable("the manifest is malformed (see manifest)"),
    };
    let target = methods.iter().find_map(|m| {
        let schema = m.params_schema.as_ref()?;
        manifest::invalid_params(schema).map(|params| (m.name.clone(), params))
    });
    let Some((method, params)) = target else {
        return not_applicable(if methods.iter().any(|m| m.params_schema.is_some()) {
            "no params_schema rejects the params this check tries ({}, an undeclared member, a wrong type)"
        } else {
            "no method in the manifest has a params_schema"
        });
    };
    let sent = Instant::now();
    let id = match session
        .request(&method, Some(params.clone()), plan.timeout)
        .await
    {
        Ok(id) => id,
        Err(err) => return fail(err),
    };
    match session.answer(id, sent + plan.timeout).await {
        Ok(answer) => match expect_error(&answer, -32602) {
            Ok(text) => pass(format!("{method} {params}: {text}")),
            Err(why) => fail(format!("{method} {params}: {why}")),
        },
        Err((wait, before)) => fail(format!(
            "{method} {params}: {}",
            waited(session, &wait, &before, plan.timeout).await
        )),
    }
}

/// After something the worker may reject or skip, `$/ping` must still be
/// answered; frames before the answer may only be null-id errors with `codes`.
async fn still_answers(
    plan: &Plan,
    session: &mut Session,
    ids: &[Value],
    codes: &[i64],
) -> Result<usize, String> {
    let id = session.request("$/ping", None, plan.timeout).await?;
    match session.answer(id, Instant::now() + plan.timeout).await {
        Ok(answer) if answer.response.get("result").is_some() => {
            let stray = unexpected_responses(&answer.before, ids, codes);
            if stray.is_empty() {
                Ok(answer
                    .before
                    .iter()
                    .filter(|f| matches!(f, Frame::Message(m) if m.get("error").is_some()))
                    .count())
            } else {
                Err(format!("unexpected answers: {}", describe(&stray)))
            }
        }
        Ok(answer) => Err(format!(
            "$/ping answered {}",
            cut(&answer.response.to_string())
        )),
        Err((wait, before)) => Err(format!(
            "$/ping afterwards: {}",
            waited(session, &wait, &before, plan.timeout).await
        )),
    }
}

async fn malformed_frame(plan: &Plan, session: &mut Session, _: &Ready) -> Outcome {
    let junk = b"{\"jsonrpc\": \"2.0\", \"method\": \"conform.truncated\", \"id\": 99, \nthis is not json\n";
    if let Err(err) = session.write_raw(junk, plan.timeout).await {
        return fail(err);
    }
    match still_answers(plan, session, &[Value::Null], &[-32700]).await {
        Ok(0) => pass("both bad lines skipped silently; $/ping still answered"),
        Ok(n) => pass(format!("{n} x -32700 with id null; $/ping still answered")),
        Err(why) => fail(why),
    }
}

async fn oversized_frame(plan: &Plan, session: &mut Session, _: &Ready) -> Outcome {
    let id = session.next_id();
    let head = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"conform.oversized\",\"params\":{{\"pad\":\""
    );
    let size = MAX_FRAME + 64 * 1024;
    let mut frame = Vec::with_capacity(size + 8);
    frame.extend_from_slice(head.as_bytes());
    frame.resize(size - 3, b'x');
    frame.extend_from_slice(b"\"}}\n");
    let sent = Instant::now();
    // Writing 16 MiB takes a reader; a worker that stopped reading shows here.
    let written = session.write_raw(&frame, plan.timeout * 2).await;
    drop(frame);
    if let Some(status) = session.exited() {
        return exited_on_oversized(session, status, size);
    }
    if let Err(err) = written {
        if let Some(status) = session.wait_exit(Instant::now() + plan.timeout).await {
            return exited_on_oversized(session, status, size);
        }
        return fail(err);
    }
    // A worker with a larger limit may read the line and answer it: -32601.
    let ids = [Value::Null, json!(id)];
    match still_answers(plan, session, &ids, &[-32600, -32601, -32700]).await {
        Ok(n) => pass(format!(
            "a {size}-byte line: {}; $/ping answered {:.0?} after it was sent",
            if n == 0 {
                "skipped silently".to_string()
            } else {
                format!("answered with {n} error(s)")
            },
            sent.elapsed()
        )),
        Err(why) => match session.wait_exit(Instant::now() + plan.timeout).await {
            Some(status) => exited_on_oversized(session, status, size),
            None => fail(format!("a {size}-byte line: {why}")),
        },
    }
}

fn exited_on_oversized(
    session: &Session,
    status: std::process::ExitStatus,
    size: usize,
) -> Outcome {
    if status.code().is_some() {
        pass(format!("exited on a {size}-byte line ({status})"))
    } else {
        let tail = session.stderr_tail();
        fail(format!(
            "killed by a signal on a {size}-byte line ({status}); stderr: {}",
            cut(&tail)
        ))
    }
}

async fn cancellation(plan: &Plan, session: &mut Session, _: &Ready) -> Outcome {
    let Some((method, params)) = &plan.slow else {
        return not_applicable("no slow method to cancel (name one with --slow-method)");
    };
    let id = match session
        .request(method, Some(params.clone()), plan.timeout)
        .await
    {
        Ok(id) => id,
        Err(err) => return fail(err),
    };
    // Give the call time to start, and make sure it is still running.
    match session
        .answer(id, Instant::now() + Duration::from_millis(300))
        .await
    {
        Ok(answer) => {
            return fail(format!(
                "{method} answered before it could be cancelled: {}",
                cut(&answer.response.to_string())
            ));
        }
        Err((Wait::Timeout, _)) => {}
        Err((wait, before)) => return fail(waited(session, &wait, &before, plan.timeout).await),
    }
    let cancelled = Instant::now();
    if let Err(err) = session
        .notify("$/cancelRequest", Some(json!({"id": id})), plan.timeout)
        .await
    {
        let why = waited(session, &Wait::Closed, &[], plan.timeout).await;
        return fail(format!("{err}; {why}"));
    }
    let answer = match session.answer(id, cancelled + plan.timeout).await {
        Ok(answer) => answer,
        Err((wait, before)) => {
            return fail(format!(
                "after $/cancelRequest: {}",
                waited(session, &wait, &before, plan.timeout).await
            ));
        }
    };
    let took = cancelled.elapsed();
    if let Err(why) = expect_error(&answer, -32800) {
        return fail(format!("after $/cancelRequest: {why}"));
    }
    match still_answers(plan, session, &[], &[]).await {
        Ok(_) => pass(format!(
            "{method}: -32800 {took:.0?} after $/cancelRequest; $/ping still answered"
        )),
        Err(why) => fail(format!("cancelled, but then {why}")),
    }
}

/// The mutual challenge of a listening worker (`--connect` only): with the
/// right secret both proofs verify; a wrong secret is refused, with
/// `$/authFailed`, by the worker.
async fn authentication(plan: &Plan, observations: &Arc<Observations>) -> (Outcome, Outcome) {
    let Some(remote) = &plan.remote else {
        let why = "a spawned worker speaks on its pipes (use --connect URL to check a listener)";
        return (not_applicable(why), not_applicable(why));
    };
    let within = plan.startup_timeout;
    let Some(secret) = &remote.secret else {
        return match Session::connect(remote, None, within, observations).await {
            Ok(session) => {
                session.finish().await;
                (
                    pass("auth none: the worker accepts clients without a secret"),
                    not_applicable("no secret given (--secret-file or PYBRIDGE_WORKER_SECRET)"),
                )
            }
            Err(why) => (fail(why), not_applicable("no secret given")),
        };
    };
    // Without a secret: a worker that has one must say it requires one.
    let needs_secret = match Session::connect(remote, None, within, observations).await {
        Ok(session) => {
            session.finish().await;
            false
        }
        Err(_) => true,
    };
    let authentication = match Session::connect(remote, Some(secret), within, observations).await {
        Ok(session) => {
            session.finish().await;
            if needs_secret {
                pass(
                    "hmac-sha256: the worker verified the bridge's proof and proved the secret in turn",
                )
            } else if remote.endpoint.is_tcp() {
                pass("auth none: the TCP worker accepts any client (started with --insecure?)")
            } else {
                pass("auth none: the Unix socket's file mode guards the worker")
            }
        }
        Err(why) => fail(why),
    };
    if !needs_secret {
        return (
            authentication,
            not_applicable("the worker authenticates nobody"),
        );
    }
    let wrong = not_the_secret();
    let wrong_secret = match Session::connect(remote, Some(&wrong), within, observations).await {
        Ok(session) => {
            session.finish().await;
            fail("the worker accepted a wrong secret")
        }
        Err(why) if why.contains("wrong secret: the worker rejected") => {
            pass(format!("refused: {why}"))
        }
        Err(why) => fail(format!(
            "refused, but without $/authFailed saying the secret is wrong: {why}"
        )),
    };
    (authentication, wrong_secret)
}

/// A secret nobody configured: fixed text and the current time in nanoseconds.
fn not_the_secret() -> pybridge_pool::Secret {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    pybridge_pool::Secret::new(format!("pybridge-conform-wrong-secret-{nanos}"))
        .expect("a non-empty secret")
}

/// How a check names the end of a worker: a process exits, a connection closes.
fn ended(session: &Session) -> &'static str {
    if session.is_remote() {
        "closed the connection"
    } else {
        "exited 0"
    }
}

async fn shutdown(plan: &Plan, session: &mut Session, _: &Ready) -> Outcome {
    let sent = Instant::now();
    if let Err(err) = session.notify("$/shutdown", None, plan.timeout).await {
        return fail(err);
    }
    match session.wait_exit(sent + plan.timeout).await {
        Some(status) if status.success() => pass(format!(
            "{} {:.0?} after $/shutdown",
            ended(session),
            sent.elapsed()
        )),
        Some(status) => fail(format!(
            "exited with {status} after $/shutdown; stderr: {}",
            cut(&session.stderr_tail())
        )),
        None => fail(format!("still running {:?} after $/shutdown", plan.timeout)),
    }
}

async fn stdin_eof(plan: &Plan, session: &mut Session, _: &Ready) -> Outcome {
    let mut context = "";
    if let Some((method, params)) = &plan.slow {
        // In-flight work must not keep a worker alive once its host is gone.
        if let Err(err) = session
            .request(method, Some(params.clone()), plan.timeout)
            .await
        {
            return fail(err);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        context = " (with a slow call in flight)";
    }
    let closed = Instant::now();
    session.close_stdin();
    match session.wait_exit(closed + plan.timeout).await {
        Some(status) if status.success() => pass(format!(
            "{} {:.0?} after stdin closed{context}",
            ended(session),
            closed.elapsed()
        )),
        Some(status) => fail(format!(
            "exited with {status} after stdin closed{context}; stderr: {}",
            cut(&session.stderr_tail())
        )),
        None => fail(format!(
            "still running {:?} after stdin closed{context}",
            plan.timeout
        )),
    }
}

fn stdout_isolation(observations: &Observations) -> Outcome {
    let (frames, processes, problems) = observations.summary();
    if problems.is_empty() {
        pass(format!(
            "{frames} frames from {processes} processes, each the READY line or a JSON-RPC 2.0 message"
        ))
    } else {
        let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
        let more = if problems.len() > 3 {
            format!(" (and {} more)", problems.len() - 3)
        } else {
            String::new()
        };
        fail(format!("{}{more}", shown.join("; ")))
    }
}
