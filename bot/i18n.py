"""User-facing text in Chinese and English, and the one place errors become words."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import TYPE_CHECKING

from bot.errors import MessageTooLongError, NotAdminError, PersonaTooLongError, StoreUnavailableError
from engine.devices import DeviceError
from engine.errors import (
    EngineStalledError,
    EngineUnavailableError,
    ModelLoadError,
    PromptTooLongError,
    UnknownModelError,
)

if TYPE_CHECKING:
    from bot.messages import IncomingMessage

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
# Two Latin letters in a row, not part of a /command or an @mention: English words.
LATIN_WORD = re.compile(r"(?<![/@\w])[A-Za-z]{2,}")
REMEMBERED_AUTHORS = 4096

TEXTS: dict[str, dict[str, str]] = {
    "engine_unavailable": {
        "en": "Sorry, the model is not available right now. Please try again in a moment.",
        "zh": "抱歉，模型暂时不可用，请稍后再试。",
    },
    "engine_stalled": {
        "en": "Sorry, the model stopped responding; it is being restarted. Please try again in a minute.",
        "zh": "抱歉，模型停止了响应，正在重启，请稍后再试。",
    },
    "prompt_too_long": {
        "en": "Sorry, that message is too long for the model ({tokens} tokens, limit {limit}).",
        "zh": "抱歉，这条消息对模型来说太长了（{tokens} 个 token，上限 {limit}）。",
    },
    "message_too_long": {
        "en": "Sorry, that message is too long ({chars} characters, limit {limit}).",
        "zh": "抱歉，这条消息太长了（{chars} 个字符，上限 {limit}）。",
    },
    "persona_too_long": {
        "en": "That persona is too long ({size} {unit}, the limit is {limit}); nothing was changed.",
        "zh": "这个人设太长了（{size} 个{unit}，上限 {limit}），没有做任何更改。",
    },
    "model_load_failed": {
        "en": "Sorry, the model {model} failed to load; an admin has been told in the log.",
        "zh": "抱歉，模型 {model} 加载失败，详情已记录在日志中。",
    },
    "model_cannot_run": {
        "en": "That model cannot run on this machine: {reason}",
        "zh": "这个模型无法在这台机器上运行：{reason}",
    },
    "unknown_model": {
        "en": "Unknown model {name}. Known models: {known}.",
        "zh": "未知模型 {name}。可用模型：{known}。",
    },
    "not_operator": {
        "en": "Sorry, only Hearth's operators can do that ({action}).",
        "zh": "抱歉，只有 Hearth 的运营者可以执行此操作（{action}）。",
    },
    "not_admin": {
        "en": "Sorry, only admins can do that ({action}).",
        "zh": "抱歉，只有管理员可以执行此操作（{action}）。",
    },
    "store_unavailable": {
        "en": "Sorry, I cannot reach my database right now; nothing was changed. Please try again shortly.",
        "zh": "抱歉，我暂时无法访问数据库，没有做任何更改。请稍后再试。",
    },
    "internal_error": {
        "en": "Sorry, something went wrong on my side. Please try again.",
        "zh": "抱歉，我这边出了点问题，请再试一次。",
    },
    "empty_reply": {
        "en": "(the model returned an empty reply)",
        "zh": "（模型没有返回内容）",
    },
    "unknown_command": {
        "en": "I don't know that command. What I can do:",
        "zh": "我不认识这个命令。我能做的：",
    },
    "groups_only": {
        "en": "/{command} works only in group channels.",
        "zh": "/{command} 只能在群组频道中使用。",
    },
    "interrupted": {
        "en": " … [interrupted: I am restarting and will answer again when I am back]",
        "zh": " ……【中断：我正在重启，恢复后会重新回答】",
    },
    "interrupted_restart": {
        "en": "[interrupted by a restart; answered again below]",
        "zh": "【因重启中断，已在下方重新回答】",
    },
    "interrupted_expired": {
        "en": "[interrupted by a restart; too long ago to answer now, please ask again]",
        "zh": "【因重启中断，时间已久不再回答，请重新提问】",
    },
    "switching_models": {
        "en": "⏳ Switching models: your message is queued and will be answered shortly.",
        "zh": "⏳ 正在切换模型：你的消息已排队，稍后回复。",
    },
    "restarting": {
        "en": "⏳ The model is restarting: your message is queued and will be answered shortly.",
        "zh": "⏳ 模型正在重启：你的消息已排队，稍后回复。",
    },
    "thinking": {
        "en": "💭 thinking…",
        "zh": "💭 思考中…",
    },
    "thought_too_long": {
        "en": "Sorry, I ran out of room while still thinking and have no answer yet. "
              "Please ask a narrower question.",
        "zh": "抱歉，我还在思考时就用完了篇幅，还没有答案。请把问题问得具体一些。",
    },
    "media_unseen": {
        "en": "I can only read text: photos, videos, voice messages, stickers and files are lost on me. "
              "Please ask in words (a caption works too).",
        "zh": "我只能读文字，看不到图片、视频、语音、贴纸或文件。请用文字提问（写在图片说明里也可以）。",
    },
    "refusal": {
        "en": "Sorry, I can't help with that.",
        "zh": "抱歉，这个我无法回答。",
    },
    "access_pairing": {
        "en": "I only talk to people my operator let in. To ask for access, give them this code: "
              "{code} (it works for an hour).",
        "zh": "我只和运营者批准的人聊天。如需使用，请把这个代码发给运营者：{code}（一小时内有效）。",
    },
    "access_denied": {
        "en": "I only talk to people and chats my operator let in.",
        "zh": "我只和运营者批准的用户与聊天交流。",
    },
    "quota_rate_user": {
        "en": "You are sending messages faster than I can answer; I'll skip your messages "
              "for about {seconds} s.",
        "zh": "你发消息太快了，接下来约 {seconds} 秒内你的消息我不会回复。",
    },
    "quota_rate_channel": {
        "en": "This chat is very busy; I'll skip new messages here for about {seconds} s.",
        "zh": "这里消息太多了，接下来约 {seconds} 秒内的新消息我不会回复。",
    },
    "quota_tokens_user": {
        "en": "You have used your {limit} tokens for today; I can answer you again after 00:00 UTC.",
        "zh": "你今天的 {limit} 个 token 额度已用完，UTC 时间 0 点后恢复。",
    },
    "quota_tokens_channel": {
        "en": "This chat has used its {limit} tokens for today; I can answer here again after 00:00 UTC.",
        "zh": "这里今天的 {limit} 个 token 额度已用完，UTC 时间 0 点后恢复。",
    },
}


class Locale:
    """Which language Hearth's own words take: HEARTH_LANGUAGE, or `auto` to follow the user.

    Following the user: Chinese characters in what they wrote, or Latin words; when a text
    says neither (`/reset`, `/model demo`, a photo), the language each author last wrote in
    (the newest REMEMBERED_AUTHORS, in memory), else their app language where the platform
    says (`IncomingMessage.language`), else English."""

    def __init__(self, setting: str = "auto") -> None:
        self._setting = setting
        self._recent: OrderedDict[str, str] = OrderedDict()

    def of(self, text: str, hint: str = "") -> str:
        """`zh` or `en` for a reply to `text`; `hint` is the author's app language where the
        platform says (`zh-hans`, `zh-CN`, `en-US`…), which decides when `text` has no words."""
        return detect_language(text, self._setting, hint)

    def of_message(self, msg: IncomingMessage) -> str:
        """The language of a reply to `msg` (remembered as its author's when its text tells)."""
        return self._for(msg, msg.text)

    def of_command(self, msg: IncomingMessage, args: str) -> str:
        """The language of a command's reply: its arguments are mostly names (a model, `on`, a
        word to block) and tell only when Chinese; else as `of_message` with no text."""
        return self._for(msg, args if CJK.search(args) else "")

    def _for(self, msg: IncomingMessage, text: str) -> str:
        who = msg.admin_key
        if self._setting in ("zh", "en"):
            return self._setting
        if CJK.search(text) or LATIN_WORD.search(text):
            lang = detect_language(text)
            self._recent[who] = lang
            self._recent.move_to_end(who)
            if len(self._recent) > REMEMBERED_AUTHORS:
                self._recent.popitem(last=False)
            return lang
        return self._recent.get(who) or detect_language("", hint=msg.language)


def detect_language(text: str, setting: str = "auto", hint: str = "") -> str:
    """`zh` or `en`: the configured language; else Chinese characters in the text; else a
    Chinese app language (`hint`) when the text has no Latin words (`/reset`, a photo); else `en`."""
    if setting in ("zh", "en"):
        return setting
    if CJK.search(text):
        return "zh"
    if hint.lower().startswith("zh") and not LATIN_WORD.search(text):
        return "zh"
    return "en"


def text(key: str, lang: str, **values: object) -> str:
    return TEXTS[key][lang].format(**values)


def error_text(error: BaseException, lang: str) -> str:
    """The short, polite reply a user sees for an error. The only such mapping."""
    match error:
        case EngineStalledError():
            return text("engine_stalled", lang)
        case EngineUnavailableError():
            return text("engine_unavailable", lang)
        case PromptTooLongError(tokens=tokens, limit=limit):
            return text("prompt_too_long", lang, tokens=tokens, limit=limit)
        case MessageTooLongError(chars=chars, limit=limit):
            return text("message_too_long", lang, chars=chars, limit=limit)
        case DeviceError(reason=reason):
            return text("model_cannot_run", lang, reason=reason)
        case ModelLoadError(reason=reason) if isinstance(error.__cause__, DeviceError):
            return text("model_cannot_run", lang, reason=reason)
        case ModelLoadError(model=model):
            return text("model_load_failed", lang, model=model)
        case UnknownModelError(name=name, known=known):
            return text("unknown_model", lang, name=name, known=", ".join(known))
        case NotAdminError(action=action, operators=operators):
            return text("not_operator" if operators else "not_admin", lang, action=action)
        case StoreUnavailableError():
            return text("store_unavailable", lang)
        case PersonaTooLongError(size=size, limit=limit, unit=unit):
            if lang == "zh":
                unit = "字符" if unit == "characters" else "token"
            return text("persona_too_long", lang, size=size, limit=limit, unit=unit)
    return text("internal_error", lang)
