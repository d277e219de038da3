//! Publish/subscribe commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH,
//! SPUBLISH and PUBSUB, with Redis 7's replies. The registry and delivery
//! are [`crate::pubsub`]'s; a connection's subscriptions live in its
//! [`ClientState`](super::ClientState).

use super::args::is;
use super::error::unknown_subcommand;
use super::{CmdError, CmdResult, Ctx};
use crate::pubsub::{Kind, Subscriptions};
use crate::store::Locked;

/// The reply names of each kind's subscribe and unsubscribe.
fn verbs(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Channel => ("subscribe", "unsubscribe"),
        Kind::Pattern => ("psubscribe", "punsubscribe"),
        Kind::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

/// What a (un)subscribe reply counts: channels and patterns together, or
/// shard channels alone.
fn reported(subs: Option<&Subscriptions>, kind: Kind) -> i64 {
    subs.map_or(0, |s| match kind {
        Kind::Shard => s.count(Kind::Shard),
        _ => s.classic(),
    }) as i64
}

/// One (un)subscribe confirmation: a push in RESP3, an array in RESP2.
fn confirm(ctx: &mut Ctx<'_>, verb: &str, name: Option<&[u8]>, count: i64) {
    ctx.out.push_header(3);
    ctx.out.bulk_str(verb);
    ctx.out.bulk_or_null(name);
    ctx.out.int(count);
}

fn subscribe_to(ctx: &mut Ctx<'_>, kind: Kind, names: &[&[u8]]) -> CmdResult {
    let (verb, _) = verbs(kind);
    for name in names {
        let client = &mut *ctx.client;
        let subs = client
            .pubsub
            .get_or_insert_with(|| Box::new(Subscriptions::new(ctx.shared.pubsub.clone(), client.handle.clone())));
        subs.subscribe(kind, name);
        let count = reported(Some(subs), kind);
        confirm(ctx, verb, Some(name), count);
    }
    Ok(())
}

fn unsubscribe_from(ctx: &mut Ctx<'_>, kind: Kind, names: &[&[u8]]) -> CmdResult {
    let (_, verb) = verbs(kind);
    // What was published before this reply is delivered before it.
    ctx.client.deliver_pending(ctx.out);
    let all;
    let names: Vec<&[u8]> = if names.is_empty() {
        all = ctx.client.pubsub.as_ref().map(|s| s.names(kind)).unwrap_or_default();
        if all.is_empty() {
            let count = reported(ctx.client.pubsub.as_deref(), kind);
            confirm(ctx, verb, None, count);
            return Ok(());
        }
        all.iter().map(|n| &n[..]).collect()
    } else {
        names.to_vec()
    };
    for name in names {
        if let Some(subs) = ctx.client.pubsub.as_mut() {
            subs.unsubscribe(kind, name);
        }
        let count = reported(ctx.client.pubsub.as_deref(), kind);
        confirm(ctx, verb, Some(name), count);
    }
    // Out of subscriber mode: the outbox goes (nothing can reach it now).
    if ctx.client.pubsub.as_ref().is_some_and(|s| s.total() == 0) {
        ctx.client.deliver_pending(ctx.out);
        ctx.client.pubsub = None;
    }
    Ok(())
}

pub fn subscribe(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    subscribe_to(ctx, Kind::Channel, &args[1..])
}

pub fn psubscribe(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    subscribe_to(ctx, Kind::Pattern, &args[1..])
}

pub fn ssubscribe(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    subscribe_to(ctx, Kind::Shard, &args[1..])
}

pub fn unsubscribe(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    unsubscribe_from(ctx, Kind::Channel, &args[1..])
}

pub fn punsubscribe(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    unsubscribe_from(ctx, Kind::Pattern, &args[1..])
}

pub fn sunsubscribe(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    unsubscribe_from(ctx, Kind::Shard, &args[1..])
}

/// `PUBLISH channel message` → the number of deliveries.
pub fn publish(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = ctx.shared.pubsub.publish(args[1], args[2]);
    ctx.client.deliver_pending(ctx.out);
    ctx.out.int(n as i64);
    Ok(())
}

/// `SPUBLISH shardchannel message` → the number of deliveries.
pub fn spublish(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = ctx.shared.pubsub.spublish(args[1], args[2]);
    ctx.client.deliver_pending(ctx.out);
    ctx.out.int(n as i64);
    Ok(())
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// `PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP`.
pub fn pubsub(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (sub, n) = (args[1], args.len());
    let arity = |name: &str| CmdError::msg(format!("ERR wrong number of arguments for 'pubsub|{name}' command"));
    let syntax = || {
        CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(sub)
        ))
    };
    let registry = &ctx.shared.pubsub;
    if is(sub, "channels") || is(sub, "shardchannels") {
        if n > 3 {
            return Err(syntax());
        }
        let kind = if is(sub, "channels") {
            Kind::Channel
        } else {
            Kind::Shard
        };
        let channels = registry.channels(kind, args.get(2).copied());
        ctx.out.array(channels.len());
        for c in &channels {
            ctx.out.bulk(c);
        }
    } else if is(sub, "numsub") || is(sub, "shardnumsub") {
        let kind = if is(sub, "numsub") { Kind::Channel } else { Kind::Shard };
        ctx.out.array(2 * (n - 2));
        for channel in &args[2..] {
            ctx.out.bulk(channel);
            ctx.out.int(registry.subscribers(kind, channel) as i64);
        }
    } else if is(sub, "numpat") {
        if n != 2 {
            return Err(arity("numpat"));
        }
        ctx.out.int(registry.patterns() as i64);
    } else if is(sub, "help") {
        if n != 2 {
            return Err(arity("help"));
        }
        ctx.help(PUBSUB_HELP);
    } else {
        return Err(unknown_subcommand(sub, "pubsub"));
    }
    Ok(())
}
