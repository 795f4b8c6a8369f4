//! Lua scripting in the embedded engine: EVAL, EVALSHA and their _RO forms, SCRIPT LOAD /
//! EXISTS / FLUSH / KILL, the sandbox Redis 7.0 gives scripts (redis.*, cjson, bit, read-only
//! globals), and the busy-script state other clients see (BUSY, SCRIPT KILL).
//!
//! A script runs inside one engine batch: every `redis.call` goes through
//! [`Batch::execute`], so it is atomic with the rest of the script and, like any command,
//! touches WATCHed keys and wakes blocked clients, whatever keys it declared.

mod cjson_decode;
mod convert;
mod libs;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::{Batch, ClientView, Engine, handlers, num, unix_ms};
use crate::command::{CommandSpec, table};
use crate::protocol::{Protocol, Reply, errors};

pub use libs::sha1_hex;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
const NEGATIVE_KEYS: &str = "ERR Number of keys can't be negative";
const TOO_MANY_KEYS: &str = "ERR Number of keys can't be greater than number of args";
pub const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";
const BAD_ARG_TYPE: &str = "ERR Lua redis lib command arguments must be strings or integers";
const NO_ARGS: &str = "ERR Please specify at least one argument for this redis lib call";
const UNKNOWN_FROM_SCRIPT: &str = "ERR Unknown Redis command called from script";
const ARITY_FROM_SCRIPT: &str = "ERR Wrong number of args calling Redis command from script";
const NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";
const WRITE_IN_RO: &str = "ERR Write commands are not allowed from read-only scripts.";
const FLUSH_MODE: &str = "ERR SCRIPT FLUSH only support SYNC|ASYNC option";

/// How often (in Lua VM instructions) a running script checks for SCRIPT KILL, as Redis.
/// The first check also hands the worker's other clients to another thread
/// ([`release_worker`]): a script that gets that far may run for long.
const HOOK_EVERY: u32 = 100_000;

/// The script being run, seen by other clients without the engine lock (it holds the lock).
#[derive(Debug)]
pub struct ScriptRun {
    /// Unix ms when the running script started; 0 when none runs.
    started_ms: AtomicU64,
    kill: AtomicBool,
    /// The script has run a write command: SCRIPT KILL would break atomicity.
    wrote: AtomicBool,
    /// The running script has handed its worker's other clients to another thread.
    released: AtomicBool,
    /// busy-reply-threshold (lua-time-limit): after this, other clients get BUSY.
    pub threshold_ms: AtomicU64,
}

impl Default for ScriptRun {
    fn default() -> ScriptRun {
        ScriptRun {
            started_ms: AtomicU64::new(0),
            kill: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            released: AtomicBool::new(false),
            threshold_ms: AtomicU64::new(5000),
        }
    }
}

impl ScriptRun {
    pub fn running(&self) -> bool {
        self.started_ms.load(Ordering::Acquire) != 0
    }

    /// A script has run past the busy threshold: commands without `allow-busy` get BUSY.
    pub fn busy(&self) -> bool {
        let started = self.started_ms.load(Ordering::Acquire);
        started != 0
            && unix_ms().saturating_sub(started) >= self.threshold_ms.load(Ordering::Relaxed)
    }

    /// SCRIPT KILL.
    pub fn kill(&self) -> Reply {
        if !self.running() {
            return Reply::err(NOTBUSY);
        }
        if self.wrote.load(Ordering::Acquire) {
            return Reply::err(UNKILLABLE);
        }
        self.kill.store(true, Ordering::Release);
        Reply::ok()
    }

    fn start(&self) {
        self.kill.store(false, Ordering::Release);
        self.wrote.store(false, Ordering::Release);
        self.released.store(false, Ordering::Relaxed);
        self.started_ms.store(unix_ms().max(1), Ordering::Release);
    }

    fn stop(&self) {
        self.started_ms.store(0, Ordering::Release);
        self.kill.store(false, Ordering::Release);
    }
}

/// A script's SHA-1 as the cache's key: 40 lowercase hex digits, no allocation to look up.
type ShaKey = [u8; 40];

/// The cache key of a client's sha (any case); None if it cannot name a script.
fn sha_key(sha: &[u8]) -> Option<ShaKey> {
    let mut key: ShaKey = sha.try_into().ok()?;
    key.make_ascii_lowercase();
    Some(key)
}

/// The Lua VM and the script cache (created on first use).
pub struct Scripting {
    lua: Lua,
    /// sha1 (lowercase hex) -> the sha as text (for replies and errors) and the compiled
    /// script.
    cache: HashMap<ShaKey, (Arc<str>, Function), foldhash::fast::RandomState>,
    /// Script body -> its sha1 and compiled script: an EVAL of a known body is found by
    /// hashing it, not by taking its SHA-1 (four times the instructions; a third of an
    /// EVAL's cost when formatted with `format!`). The same scripts as `cache`.
    by_body: HashMap<Bytes, (Arc<str>, Function), foldhash::fast::RandomState>,
    xpcall: Function,
    error_handler: Function,
    names: Names,
    /// The running script's bridge to its batch (see [`Scripting::call`]); None between runs.
    running: RunningBridge,
}

/// Where the permanent `redis.call`/`pcall`/`setresp` find the running script's bridge.
type RunningBridge = Arc<parking_lot::Mutex<Option<Function>>>;

/// The first argument the redis.* functions pass to the running script's bridge.
const BRIDGE_CALL: i64 = 0;
const BRIDGE_PCALL: i64 = 1;
const BRIDGE_SETRESP: i64 = 2;

/// The names every run sets, made Lua strings once (not looked up in Lua's string table
/// again for every EVAL).
struct Names {
    keys: mlua::LuaString,
    argv: mlua::LuaString,
}

/// Does the scripting module answer this command?
pub fn handles(name: &str) -> bool {
    matches!(
        name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "script"
    )
}

/// Lua's own number formatting (`%.14g`), used for numbers turned into text.
pub fn format_lua_number(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.into();
    }
    crate::protocol::reply::format_g(n, 14)
}

/// Runs EVAL & co. or SCRIPT within the batch.
pub fn run(batch: &mut Batch<'_>, client: ClientView, cmd: &CommandSpec, argv: &[Bytes]) -> Reply {
    match cmd.name {
        "eval" => eval(batch, client, argv, false, false),
        "eval_ro" => eval(batch, client, argv, false, true),
        "evalsha" => eval(batch, client, argv, true, false),
        "evalsha_ro" => eval(batch, client, argv, true, true),
        _ => script_command(batch.engine, argv),
    }
}

fn script_command(engine: &Engine, argv: &[Bytes]) -> Reply {
    let sub = argv
        .get(1)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    match sub.as_slice() {
        b"load" if argv.len() == 3 => {
            let mut vm = engine.scripting.lock();
            let vm = match vm_of(&mut vm, engine) {
                Ok(vm) => vm,
                Err(e) => return e,
            };
            match vm.compile(&argv[2]) {
                Ok((sha, _)) => Reply::bulk(sha.as_bytes().to_vec()),
                Err(e) => e,
            }
        }
        b"exists" if argv.len() >= 3 => {
            let vm = engine.scripting.lock();
            Reply::Array(
                argv[2..]
                    .iter()
                    .map(|sha| {
                        let known = sha_key(sha).is_some_and(|k| {
                            vm.as_ref().is_some_and(|vm| vm.cache.contains_key(&k))
                        });
                        Reply::Integer(known as i64)
                    })
                    .collect(),
            )
        }
        b"flush" => {
            let mode_ok =
                |m: &Bytes| m.eq_ignore_ascii_case(b"sync") || m.eq_ignore_ascii_case(b"async");
            if argv.len() > 3 || argv.get(2).is_some_and(|m| !mode_ok(m)) {
                return Reply::err(FLUSH_MODE);
            }
            // Like Redis, a flush also starts a fresh Lua VM.
            *engine.scripting.lock() = None;
            Reply::ok()
        }
        b"kill" if argv.len() == 2 => engine.script_run.kill(),
        b"debug" if argv.len() == 3 => Reply::err(errors::not_implemented("script|debug")),
        b"help" if argv.len() == 2 => Reply::Array(
            SCRIPT_HELP
                .iter()
                .map(|l| Reply::Status((*l).to_string()))
                .collect(),
        ),
        _ => Reply::err(errors::unknown_subcommand(
            argv.get(1).map(|b| b.as_ref()).unwrap_or(b""),
            "script",
        )),
    }
}

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

fn vm_of<'g>(slot: &'g mut Option<Scripting>, engine: &Engine) -> Result<&'g mut Scripting, Reply> {
    if slot.is_none() {
        match Scripting::new(engine) {
            Ok(vm) => *slot = Some(vm),
            Err(e) => {
                tracing::error!(error = %e, "cannot create the Lua VM");
                return Err(Reply::err(format!("ERR cannot create the Lua VM: {e}")));
            }
        }
    }
    slot.as_mut()
        .ok_or_else(|| Reply::err("ERR cannot create the Lua VM"))
}

/// What the redis.* functions of one running script work with.
struct CallState<'b, 'a> {
    batch: &'b mut Batch<'a>,
    /// The script's database (SELECT inside a script changes only the script's) and
    /// protocol (redis.setresp).
    client: ClientView,
    read_only: bool,
}

fn eval(
    batch: &mut Batch<'_>,
    client: ClientView,
    argv: &[Bytes],
    by_sha: bool,
    read_only: bool,
) -> Reply {
    let numkeys = match num::parse_i64(&argv[2]) {
        Some(n) => n,
        None => return Reply::err(errors::NOT_INTEGER),
    };
    let rest = argv.len() - 3;
    if numkeys > rest as i64 {
        return Reply::err(TOO_MANY_KEYS);
    }
    if numkeys < 0 {
        return Reply::err(NEGATIVE_KEYS);
    }
    let numkeys = numkeys as usize;
    let (keys, args) = argv[3..].split_at(numkeys);

    let engine = batch.engine;
    let mut slot = engine.scripting.lock();
    let vm = match vm_of(&mut slot, engine) {
        Ok(vm) => vm,
        Err(e) => return e,
    };
    let (sha, func, shebang_ro) = if by_sha {
        match sha_key(&argv[1]).and_then(|k| vm.cache.get(&k)) {
            Some((sha, f)) => (sha.clone(), f.clone(), false),
            None => return Reply::err(NOSCRIPT),
        }
    } else {
        match vm.compile(&argv[1]) {
            Ok((sha, f)) => (sha, f, shebang_no_writes(&argv[1])),
            Err(e) => return e,
        }
    };
    if let Err(e) = vm.set_keys_and_args(keys, args) {
        return Reply::err(format!("ERR {e}"));
    }
    batch.state.in_script = true;
    let state = RefCell::new(CallState {
        batch,
        client: ClientView {
            db: client.db,
            proto: Protocol::Resp2,
            tracker: client.tracker,
        },
        read_only: read_only || shebang_ro,
    });
    engine.script_run.start();
    let outcome = vm.call(&func, &state, &engine.script_run);
    let killed = engine.script_run.kill.load(Ordering::Acquire);
    engine.script_run.stop();
    let finished = state.into_inner();
    finished.batch.state.in_script = false;
    let proto = finished.client.proto;
    match outcome {
        Ok((true, v)) => convert::lua_to_reply(&v, proto),
        Ok((false, v)) => failure_reply(&v, &sha, killed),
        Err(e) => Reply::err(format!(
            "ERR Error running script {sha}, {:.100}",
            e.to_string()
        )),
    }
}

/// `#!lua flags=no-writes` makes an EVAL read-only, as in Redis 7.
fn shebang_no_writes(body: &[u8]) -> bool {
    let Some(rest) = body.strip_prefix(b"#!") else {
        return false;
    };
    let line = rest.split(|&c| c == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("flags="))
        .any(|flags| flags.split(',').any(|f| f == "no-writes"))
}

/// The error a failed script answers: its message and, as Redis 7.0 adds, where it failed.
fn failure_reply(err: &Value, sha: &str, killed: bool) -> Reply {
    let Value::Table(t) = err else {
        return Reply::err(format!("ERR Error running script {sha}, execution failure"));
    };
    let msg = if killed {
        KILLED.to_string()
    } else {
        match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "ERR unknown error".to_string(),
        }
    };
    let source = t.raw_get::<Option<String>>("source").ok().flatten();
    let line = t.raw_get::<Option<i64>>("line").ok().flatten();
    let mut text = msg.replace(['\r', '\n'], " ");
    if let (Some(source), Some(line)) = (source, line) {
        text.push_str(&format!(" script: {sha}, on {source}:{line}."));
    }
    Reply::Error(text)
}

impl Scripting {
    fn new(engine: &Engine) -> mlua::Result<Scripting> {
        // Redis's set: base, table, string, math (no io, os, package, debug).
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let globals = lua.globals();
        for name in ["loadfile", "dofile"] {
            globals.raw_set(name, Value::Nil)?;
        }
        libs::install(&lua)?;
        let bridge = lua.create_table()?;
        // An error raised from Rust (redis.call's) reaches Lua as userdata: its text, for the
        // prelude's pcall.
        bridge.raw_set(
            "error_text",
            lua.create_function(|_, v: Value| {
                Ok(match &v {
                    Value::Error(e) => error_text(e),
                    other => format!("{other:?}"),
                })
            })?,
        )?;
        lua.load(PRELUDE)
            .set_name("=redis")
            .call::<()>(bridge.clone())?;
        let xpcall = globals.raw_get::<Function>("xpcall")?;
        let error_handler = lua.create_function(locate_error)?;
        let run = std::sync::Arc::clone(&engine.script_run);
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if run.kill.load(Ordering::Acquire) {
                    return Err(mlua::Error::runtime(KILLED));
                }
                // Scripts run on the thread of the connection that sent them (no hand-off
                // for the short ones, nearly all). One that is still running here lets
                // the other connections go on elsewhere: they get BUSY past the threshold,
                // and SCRIPT KILL gets through.
                if !run.released.swap(true, Ordering::Relaxed) {
                    crate::backend::embedded::release_worker();
                }
                Ok(VmState::Continue)
            },
        )?;
        let redis = globals.raw_get::<Table>("redis")?;
        // redis.call/pcall/setresp are Rust functions so that `return redis.call(..)` stays
        // a C call and keeps the script's frame for the error's line number. They are made
        // once; each hands its arguments to the running script's bridge.
        let running = RunningBridge::default();
        for (name, kind) in [
            ("call", BRIDGE_CALL),
            ("pcall", BRIDGE_PCALL),
            ("setresp", BRIDGE_SETRESP),
        ] {
            let running = Arc::clone(&running);
            let f = lua.create_function(move |_, mut args: MultiValue| {
                let bridge = running.lock().clone();
                let Some(bridge) = bridge else {
                    return Err(raised(
                        "ERR redis.call is only available to a running script",
                    ));
                };
                args.push_front(Value::Integer(kind));
                bridge.call::<Value>(args)
            })?;
            redis.raw_set(name, f)?;
        }
        // sha1hex and log are Rust functions, as they are C ones in Redis: a failing
        // `return redis.sha1hex()` keeps the script's frame for the error's position (a
        // tail call to a Lua function drops it).
        redis.raw_set(
            "sha1hex",
            lua.create_function(|_, args: MultiValue| match (args.len(), args.front()) {
                // lua_tolstring: a number is hashed as its text, anything else as "".
                (1, Some(Value::String(s))) => Ok(sha1_hex(&s.as_bytes())),
                (1, Some(Value::Integer(i))) => Ok(sha1_hex(i.to_string().as_bytes())),
                (1, Some(Value::Number(n))) => Ok(sha1_hex(format_lua_number(*n).as_bytes())),
                (1, _) => Ok(sha1_hex(b"")),
                _ => Err(raised("ERR wrong number of arguments")),
            })?,
        )?;
        redis.raw_set("log", lua.create_function(script_log)?)?;
        let names = Names {
            keys: lua.create_string("KEYS")?,
            argv: lua.create_string("ARGV")?,
        };
        Ok(Scripting {
            lua,
            cache: HashMap::default(),
            by_body: HashMap::default(),
            names,
            running,
            xpcall,
            error_handler,
        })
    }

    /// Compiles (or finds in the cache) a script body; returns its sha1 and function.
    fn compile(&mut self, body: &[u8]) -> Result<(Arc<str>, Function), Reply> {
        if let Some((sha, f)) = self.by_body.get(body) {
            return Ok((sha.clone(), f.clone()));
        }
        let hex = sha1_hex(body);
        let key = sha_key(hex.as_bytes()).ok_or_else(|| Reply::err("ERR bad SHA-1"))?;
        if let Some((sha, f)) = self.cache.get(&key) {
            let (sha, f) = (sha.clone(), f.clone());
            self.by_body
                .insert(Bytes::copy_from_slice(body), (sha.clone(), f.clone()));
            return Ok((sha, f));
        }
        // A shebang line is not Lua: blank it, keeping line numbers.
        let source: Vec<u8> = if body.starts_with(b"#!") {
            let end = body.iter().position(|&c| c == b'\n').unwrap_or(body.len());
            body[end..].to_vec()
        } else {
            body.to_vec()
        };
        let func = self
            .lua
            .load(&source[..])
            .set_name("@user_script")
            .into_function()
            .map_err(|e| {
                let msg = match &e {
                    mlua::Error::SyntaxError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                Reply::err(format!("ERR Error compiling script (new function): {msg}"))
            })?;
        let sha: Arc<str> = hex.into();
        self.cache.insert(key, (sha.clone(), func.clone()));
        self.by_body
            .insert(Bytes::copy_from_slice(body), (sha.clone(), func.clone()));
        Ok((sha, func))
    }

    fn set_keys_and_args(&self, keys: &[Bytes], args: &[Bytes]) -> mlua::Result<()> {
        let globals = self.lua.globals();
        for (name, list) in [(&self.names.keys, keys), (&self.names.argv, args)] {
            let t = self.lua.create_table_with_capacity(list.len(), 0)?;
            for (i, item) in list.iter().enumerate() {
                t.raw_set(i + 1, self.lua.create_string(item)?)?;
            }
            globals.raw_set(name, t)?;
        }
        Ok(())
    }

    /// Calls the script under `xpcall` with the redis.* bridge bound to this run's batch.
    fn call(
        &self,
        func: &Function,
        state: &RefCell<CallState<'_, '_>>,
        run: &ScriptRun,
    ) -> mlua::Result<(bool, Value)> {
        self.lua.scope(|scope| {
            let run_command = |lua: &Lua, args: MultiValue, raise: bool| -> mlua::Result<Value> {
                let argv = match lua_args(args) {
                    Ok(argv) => argv,
                    Err(e) if raise => return Err(raised(e)),
                    Err(e) => return error_table(lua, e),
                };
                let mut st = state.borrow_mut();
                let reply = st.call(&argv, run);
                let proto = st.client.proto;
                drop(st);
                match reply {
                    Reply::Error(e) if raise => Err(raised(&e)),
                    reply => convert::reply_to_lua(lua, &reply, proto),
                }
            };
            let setresp = |args: MultiValue| -> mlua::Result<Value> {
                if args.len() != 1 {
                    return Err(raised("ERR redis.setresp() requires one argument."));
                }
                let v = match args.front() {
                    Some(Value::Integer(i)) => *i,
                    Some(Value::Number(n)) => convert::lua_number_to_i64(*n),
                    _ => 0,
                };
                let proto = match v {
                    2 => Protocol::Resp2,
                    3 => Protocol::Resp3,
                    _ => return Err(raised("ERR RESP version must be 2 or 3.")),
                };
                state.borrow_mut().client.proto = proto;
                Ok(Value::Nil)
            };
            // One callback per run (mlua makes and unmakes each in the scope: three were a
            // quarter of a short EVAL), reached through the permanent redis.* functions.
            let bridge =
                scope.create_function(move |lua, mut args: MultiValue| match args.pop_front() {
                    Some(Value::Integer(BRIDGE_SETRESP)) => setresp(args),
                    Some(Value::Integer(BRIDGE_PCALL)) => run_command(lua, args, false),
                    _ => run_command(lua, args, true),
                })?;
            *self.running.lock() = Some(bridge);
            let result = self.xpcall.call::<MultiValue>((func, &self.error_handler));
            *self.running.lock() = None;
            let mut values = result?.into_iter();
            let ok = matches!(values.next(), Some(Value::Boolean(true)));
            Ok((ok, values.next().unwrap_or(Value::Nil)))
        })
    }
}

/// redis.log(level, message...): the level's checks as Redis words them, then the message
/// parts joined by spaces into respgate's log.
fn script_log(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() < 2 {
        return Err(raised("ERR redis.log() requires two arguments or more."));
    }
    let mut args = args.into_iter();
    // lua_isnumber: a number, or a string that reads as one.
    let level = match args.next() {
        Some(Value::Integer(i)) => Some(i as f64),
        Some(Value::Number(n)) => Some(n),
        Some(Value::String(s)) => std::str::from_utf8(&s.as_bytes())
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok()),
        _ => None,
    };
    let Some(level) = level else {
        return Err(raised("ERR First argument must be a number (log level)."));
    };
    if !(0.0..=3.0).contains(&level) {
        return Err(raised("ERR Invalid debug level."));
    }
    let parts: Vec<String> = args
        .map(|v| match v {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => format_lua_number(n),
            Value::Boolean(b) => b.to_string(),
            Value::Nil => "nil".to_string(),
            other => other.type_name().to_string(),
        })
        .collect();
    let msg = parts.join(" ");
    match level as i64 {
        0 => tracing::debug!(target: "respgate::script", "{msg}"),
        1 | 2 => tracing::info!(target: "respgate::script", "{msg}"),
        _ => tracing::warn!(target: "respgate::script", "{msg}"),
    }
    Ok(())
}

/// A Lua error raised from Rust with Redis's exact error text; the message handler turns it
/// back into the `{err=...}` table Redis raises.
#[derive(Debug)]
pub struct Raised {
    pub msg: String,
    /// An error as Lua C libraries raise it with `luaL_error` (cjson): `msg` already has the
    /// calling line in front where there is one, and uncaught it shows as `ERR <msg>`.
    pub positioned: bool,
}

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Raised {}

fn raised(msg: &str) -> mlua::Error {
    mlua::Error::external(Raised {
        msg: msg.to_string(),
        positioned: false,
    })
}

/// The [`Raised`] inside an error, through mlua's callback wrapping.
fn find_raised(e: &mlua::Error) -> Option<&Raised> {
    match e {
        mlua::Error::CallbackError { cause, .. } => find_raised(cause),
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<Raised>(),
        mlua::Error::WithContext { cause, .. } => find_raised(cause),
        _ => None,
    }
}

/// The text of an error raised from Rust: Redis's message for a [`Raised`] one.
fn error_text(e: &mlua::Error) -> String {
    match (find_raised(e), e) {
        (Some(r), _) => r.msg.clone(),
        (None, mlua::Error::RuntimeError(m)) => m.clone(),
        (None, mlua::Error::CallbackError { cause, .. }) => error_text(cause),
        (None, e) => e.to_string(),
    }
}

fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", msg)?;
    Ok(Value::Table(t))
}

/// Redis 7.0's refusal of a redis.call the script's user may not run (redis-server 7.0.15).
const SCRIPT_NOPERM: &str =
    "ERR The user executing the script can't run this command or subcommand";

/// redis.call's arguments as a command line: strings as they are, numbers as Redis 7.0
/// formats them (`%.17g`); anything else is refused.
fn lua_args(args: MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err(NO_ARGS);
    }
    args.iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => Ok(Bytes::from(i.to_string())),
            Value::Number(n) => Ok(Bytes::from(crate::protocol::reply::format_g17(*n))),
            _ => Err(BAD_ARG_TYPE),
        })
        .collect()
}

impl CallState<'_, '_> {
    /// One redis.call: the checks Redis makes for commands from scripts, then the command.
    fn call(&mut self, argv: &[Bytes], run: &ScriptRun) -> Reply {
        let Some(spec) = table::lookup(&argv[0]) else {
            return Reply::err(UNKNOWN_FROM_SCRIPT);
        };
        let effective = if spec.subcommands.is_empty() {
            spec
        } else {
            match argv.get(1).and_then(|s| table::lookup_subcommand(spec, s)) {
                Some(sub) => sub,
                None => return Reply::err(UNKNOWN_FROM_SCRIPT),
            }
        };
        if !effective.arity_ok(argv.len()) {
            return Reply::err(ARITY_FROM_SCRIPT);
        }
        if effective.has(table::flags::NOSCRIPT) {
            return Reply::err(NOT_ALLOWED);
        }
        if effective.has(table::flags::WRITE) {
            if self.read_only {
                return Reply::err(WRITE_IN_RO);
            }
            run.wrote.store(true, Ordering::Release);
        }
        match spec.name {
            "select" => return self.select(&argv[1]),
            "ping" => {
                return match argv.get(1) {
                    Some(msg) if argv.len() == 2 => Reply::Bulk(msg.clone()),
                    _ => Reply::Simple("PONG"),
                };
            }
            "echo" => return Reply::Bulk(argv[1].clone()),
            "time" => return crate::command::connection::time_reply(),
            _ => {}
        }
        if !handlers().contains_key(spec.name) {
            return Reply::err(errors::not_implemented(spec.name));
        }
        if matches!(spec.name, "xread" | "xreadgroup")
            && let Some(err) = super::stream_cmds::block_from_script_error(argv)
        {
            return err;
        }
        if let Some(tenant) = self.batch.tenant().cloned() {
            // A tenant's script is held to what the tenant may do itself: the same command
            // policy, and its keys in the tenant's namespace.
            let container = (!spec.subcommands.is_empty()).then_some(spec);
            if tenant.acl.check(effective, container).is_some() {
                return Reply::err(SCRIPT_NOPERM);
            }
            return self.batch.execute_as(self.client, &tenant, spec, argv);
        }
        self.batch.execute(self.client, spec, argv)
    }

    fn select(&mut self, arg: &[u8]) -> Reply {
        let Some(db) = num::parse_i64(arg) else {
            return Reply::err(errors::NOT_INTEGER);
        };
        match usize::try_from(db) {
            Ok(db) if db < self.batch.state.dbs.len() => {
                self.client.db = db;
                Reply::ok()
            }
            _ => Reply::err(errors::DB_INDEX),
        }
    }
}

/// xpcall's message handler: turns any error into Redis's error table and records where in
/// the user's script it happened (the innermost frame of `@user_script`).
fn locate_error(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match err {
        Value::Table(t) => t,
        other => {
            let msg = match &other {
                Value::String(s) => format!("ERR {}", String::from_utf8_lossy(&s.as_bytes())),
                Value::Error(e) => match (find_raised(e), e.as_ref()) {
                    (Some(r), _) if r.positioned => format!("ERR {}", r.msg),
                    (Some(r), _) => r.msg.clone(),
                    (None, mlua::Error::RuntimeError(m)) => format!("ERR {m}"),
                    (None, e) => format!("ERR {e}"),
                },
                v => format!("ERR {v:?}"),
            };
            let t = lua.create_table()?;
            t.raw_set("err", msg)?;
            t
        }
    };
    // Where Redis's error handler says the error happened: the function that raised it (level
    // 1 here), or its caller when that is a C function (redis.call, error, cjson.decode) —
    // the script's line, or `=[C]:-1` when C called it (`string.gsub(s, p, cjson.decode)`).
    // The prelude's Lua functions (`=redis`) are C functions in Redis: passed over too.
    let frame = |level: usize| {
        lua.inspect_stack(level, |d| {
            let src = d.source();
            (
                src.source.map(|s| s.into_owned()),
                src.what == "C",
                d.current_line(),
            )
        })
    };
    let mut level = 1;
    let mut at = frame(level);
    if matches!(at, Some((_, true, _))) {
        level += 1;
        at = frame(level);
    }
    while let Some((Some(src), _, _)) = &at
        && src == "=redis"
    {
        level += 1;
        at = frame(level);
    }
    // A Lua tail call to a prelude function (`return redis.error_reply()`) left no frame
    // of the caller to name: then no position, rather than a wrong one.
    if let Some((Some(src), _, line)) = at
        && src != "=(tail call)"
    {
        t.raw_set("source", src)?;
        t.raw_set("line", line.map_or(-1, |l| l as i64))?;
    }
    Ok(t)
}

/// The redis.* library (in Lua over the Rust bridge) and the read-only globals.
const PRELUDE: &str = r#"
local bridge = ...
local error, type, select, tostring = error, type, select, tostring
local sub, find = string.sub, string.find
local redis = {}
redis.error_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if sub(s, 1, 1) == '-' then s = sub(s, 2) end
  if not find(s, ' ', 1, true) then s = 'ERR ' .. s end
  return {err = s}
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  return {ok = s}
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.set_repl = function() end
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION = '7.0.15'
redis.REDIS_VERSION_NUM = 458767
-- Redis's pcall: an error raised as a table with a string (or number) `err`, as redis.call
-- raises them, is caught as that value, as Redis 7 scripts see it.
local pcall_lua, error_text = pcall, bridge.error_text
local function caught(ok, ...)
  if ok then return true, ... end
  local e = ...
  if type(e) == 'table' then
    local err = rawget(e, 'err')
    if type(err) == 'string' or type(err) == 'number' then e = err end
  elseif type(e) == 'userdata' then
    e = error_text(e)
  end
  return false, e
end
rawset(_G, 'pcall', function(...)
  if select('#', ...) == 0 then return caught(pcall_lua(nil)) end
  return caught(pcall_lua(...))
end)
rawset(_G, 'redis', redis)
setmetatable(_G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = function()
    error('Attempt to modify a readonly table', 2)
  end,
  __metatable = false,
})
"#;
