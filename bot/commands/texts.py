"""Every reply a command writes, in English and Chinese: one typed table (`Text` pairs).

Command handlers say things only through `say(key, lang, …)`, with the language the
table decided for the author (`Invocation.lang`: Chinese in what they typed, else the
language they last wrote in, else their app's language). Core notices and errors live in
`bot.i18n.TEXTS`; help texts in each command's spec. `tests/core/test_catalogue.py` checks
that every entry of all three has both languages, with the same placeholders.
"""

from __future__ import annotations

from bot.commands.spec import Text

TEXTS: dict[str, Text] = {
    # /model
    "model_pinned": Text("This channel is answered by {model}.", "本频道由 {model} 回答。"),
    "model_serving": Text("Now serving {model} ({quantization}).", "现在使用 {model}（{quantization}）。"),
    "model_pinned_here": Text("This channel is pinned to {model}.", "本频道固定使用 {model}。"),
    "model_served_list": Text("Models the servers serve (* = serving):",
                              "服务器提供的模型（* = 正在使用）："),
    "model_list": Text("Models (* = serving):", "模型（* = 正在使用）："),
    # /persona
    "persona_set": Text("Persona set for this channel.", "已为本频道设置人设。"),
    "persona_reset": Text("Persona reset to the default.", "人设已恢复为默认。"),
    "persona_template": Text("Persona template:", "人设模板："),
    "persona_set_usage": Text(
        "Usage: /persona set TEXT (the new persona for this channel; {{bot_name}}, {{platform}}, "
        "{{channel_name}} and {{date}} in it are filled in).",
        "用法：/persona set 文本（本频道的新人设；其中的 {{bot_name}}、{{platform}}、{{channel_name}} 和 "
        "{{date}} 会被替换）。"),
    # /reset
    "reset_done": Text("Conversation forgotten ({count} messages).",
                       "已清除本会话的记忆（{count} 条消息）。"),
    "reset_done_one": Text("Conversation forgotten (1 message).", "已清除本会话的记忆（1 条消息）。"),
    # /hearth-channel
    "channel_on": Text("I will answer every message in this channel (and its threads) from now on.",
                       "从现在起，我会回复本频道（及其子话题）中的每一条消息。"),
    "channel_off": Text("I will answer here only when mentioned or replied to.",
                        "从现在起，我只在被提及或被回复时才在这里回答。"),
    "channel_usage": Text("Usage: /hearth-channel on|off", "用法：/hearth-channel on|off"),
    # /status
    "status_model": Text("model: {model} ({quantization}), {state}",
                         "模型：{model}（{quantization}），{state}"),
    "status_queue": Text("queue: {waiting} waiting or running, {running} generating",
                         "队列：{waiting} 条等待或处理中，{running} 条正在生成"),
    "status_uptime": Text("uptime: {uptime}", "运行时间：{uptime}"),
    # The engine's states (engine.types.EngineStats.state) as /status names them.
    "state_ready": Text("ready", "就绪"),
    "state_loading": Text("loading", "加载中"),
    "state_switching": Text("switching", "切换中"),
    "state_restarting": Text("restarting", "重启中"),
    "state_stalled": Text("stalled", "无响应"),
    "state_failed": Text("failed", "失败"),
    "state_stopped": Text("stopped", "已停止"),
    "state_unavailable": Text("unavailable", "不可用"),
    "status_served": Text("served: {replies} replies, {reply_tokens} tokens out, {prompt_tokens} in",
                          "已回复：{replies} 次，输出 {reply_tokens} 个 token，输入 {prompt_tokens} 个"),
    "status_hit_rate": Text("prefix-cache hit rate: {rate}", "前缀缓存命中率：{rate}"),
    "status_engine": Text("engine: {restarts} restarts", "引擎：重启 {restarts} 次"),
    "status_last_error": Text(", last error: {error}", "，最近的错误：{error}"),
    "status_asleep": Text("; asleep for a quick switch back: {models}", "；休眠中，可快速切回：{models}"),
    "status_sampling": Text("sampling: {sampling}", "采样：{sampling}"),
    "status_server_decides": Text("the server decides", "由服务器决定"),
    "status_replica": Text("replica {url}: {state}, {replies} replies",
                           "副本 {url}：{state}，{replies} 次回复"),
    "status_replica_up": Text("up", "正常"),
    "status_replica_down": Text("down ({error})", "不可用（{error}）"),
    "status_replica_metrics": Text(", prefix-cache hit rate {rate}, {running} running, {waiting} waiting",
                                   "，前缀缓存命中率 {rate}，{running} 个运行中，{waiting} 个等待中"),
    "status_database_ok": Text("database: ok", "数据库：正常"),
    "status_database_outages": Text("database: ok ({outages} outages)",
                                    "数据库：正常（曾中断 {outages} 次）"),
    "status_database_failing": Text("database: failing for {seconds} s ({reason}); messages wait",
                                    "数据库：已故障 {seconds} 秒（{reason}）；消息在等待"),
    # /moderation
    "moderation_usage": Text(
        "Usage: /moderation block WORD [category] | allow WORD | remove WORD | list\n"
        "       /moderation global block|allow|remove WORD [category]  (operators)\nCategories: {categories}",
        "用法：/moderation block 词 [类别] | allow 词 | remove 词 | list\n"
        "      /moderation global block|allow|remove 词 [类别]（运营者）\n类别：{categories}",
    ),
    "moderation_every_chat": Text("every chat", "所有聊天"),
    "moderation_this_chat": Text("this chat", "本聊天"),
    "moderation_not_listed": Text("{word} was not on the list for {where}.", "{word} 不在{where}的名单上。"),
    "moderation_removed": Text("Removed {word} for {where}.", "已为{where}移除 {word}。"),
    "moderation_allowing": Text("Allowing {word} in {where}.", "已在{where}放行 {word}。"),
    "moderation_blocking": Text("Blocking {word} ({category}) in {where}.",
                                "已在{where}屏蔽 {word}（{category}）。"),
    "moderation_none": Text("No moderation words for this chat (the shipped lists still apply).",
                            "本聊天没有自定义审核词（内置词表仍然有效）。"),
    "moderation_words": Text("Moderation words:", "审核词："),
    # /usage and /quota
    "usage_you": Text("You, today / last {days} days (UTC):", "你，今天 / 最近 {days} 天（UTC）："),
    "usage_channel": Text("This channel, today / last {days} days (UTC):",
                          "本频道，今天 / 最近 {days} 天（UTC）："),
    "usage_all": Text("Everything, today / last {days} days (UTC):", "全部，今天 / 最近 {days} 天（UTC）："),
    "usage_line": Text(
        "{name}: {messages_today} / {messages_week} messages, {tokens_today} / {tokens_week} tokens, "
        "{refused_today} / {refused_week} refused",
        "{name}：{messages_today} / {messages_week} 条消息，{tokens_today} / {tokens_week} 个 token，"
        "拒绝 {refused_today} / {refused_week} 条",
    ),
    "usage_total": Text("total", "合计"),
    "usage_by_user": Text("by user", "按用户"),
    "usage_by_channel": Text("by channel", "按频道"),
    "usage_top": Text("{title} (the {top} with most tokens over the {days} days):",
                      "{title}（{days} 天内 token 最多的前 {top} 名）："),
    "usage_none": Text("(none)", "（无）"),
    "usage_quota": Text("tokens today against your daily quota: {left}", "今天已用 token / 每日额度：{left}"),
    "usage_quota_of": Text("{spent} of {quota}", "{spent}，额度 {quota}"),
    "usage_no_limit": Text("{spent} (no limit)", "{spent}（不限）"),
    "quota_usage": Text("Usage: /quota | /quota set NAME VALUE | /quota reset [NAME]\nNames: {names}",
                        "用法：/quota | /quota set 名称 数值 | /quota reset [名称]\n名称：{names}"),
    "quota_limits": Text("Limits here (0: none; * = this channel's own value):",
                         "此处的限制（0 表示不限；* 表示本频道自己的设置）："),
    "quota_spent": Text("your tokens today: {spent}", "你今天用掉的 token：{spent}"),
    # /access
    "access_usage": Text("Usage: /access | /access approve CODE | /access allow ENTRY | /access revoke ENTRY",
                         "用法：/access | /access approve 配对码 | /access allow 条目 | /access revoke 条目"),
    "access_paired": Text("Paired: {entry} may talk to me now.", "配对成功：{entry} 现在可以和我交流了。"),
    "access_no_code": Text("No such code, or it expired.", "没有这个配对码，或者它已过期。"),
    "access_not_entry": Text("Not an entry: use {form}.", "条目格式不对：请使用 {form}。"),
    "access_allowed": Text("{entry} may talk to me now.", "{entry} 现在可以和我交流了。"),
    "access_revoked": Text("Revoked {entry}.", "已撤销 {entry}。"),
    "access_not_added": Text("{entry} was not added with /access.", "{entry} 不是用 /access 添加的。"),
    "access_open": Text("Access: open (HEARTH_ACCESS=open): anyone may talk to me.",
                        "访问：开放（HEARTH_ACCESS=open）：任何人都可以和我交流。"),
    "access_allowlist": Text("Access: allowlist; direct messages: {dm_policy}.",
                             "访问：名单制；私信：{dm_policy}。"),
    "access_from_settings": Text("  {entry} (HEARTH_ACCESS_ALLOW)", "  {entry}（来自 HEARTH_ACCESS_ALLOW）"),
    "access_from_command": Text("  {entry} (added with /access)", "  {entry}（用 /access 添加）"),
    "access_no_entries": Text("  (no entries: only operators)", "  （没有条目：只有运营者）"),
}


def say(key: str, lang: str, **values: object) -> str:
    """The catalogue's `key` in `lang` (`zh`, else English), its placeholders filled."""
    return TEXTS[key].get(lang).format(**values)
