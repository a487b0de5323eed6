#!/usr/bin/env python3
"""Regenerates the *.golden files beside this script from the *.jinja chat templates.

Not run by the tests: the goldens are committed. Run it by hand (needs python3-jinja2) after
adding a template. It renders exactly as Hugging Face transformers' apply_chat_template does:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension, `tojson` = json.dumps(ensure_ascii=False, ...), globals raise_exception() and
strftime_now(), and the variables messages, tools (None unless given), documents (None),
add_generation_prompt, bos_token and eos_token. strftime_now is pinned to 2024-07-26.

Golden format: a sequence of records "@@ <key> <byte count>\n<bytes>\n". Keys "bos" and "eos"
give the special-token texts used; every other key is a conversation from CASES, and its
bytes are the rendered prompt, or "ERROR: <message>" when the template raised.
The conversations must stay in sync with tests/engine/chat_template_test.cc.
"""

import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))

QWEN = ("", "<|im_end|>")
LLAMA = ("<s>", "</s>")
LLAMA3 = ("<|begin_of_text|>", "<|eot_id|>")
PHI3 = ("<s>", "<|endoftext|>")
GEMMA = ("<bos>", "<eos>")
DEEPSEEK = ("<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>")
TOKENS = {
    "chatml": ("<s>", "<|im_end|>"),
    "qwen2_gguf": QWEN,
    "qwen2_5": QWEN,
    "qwen3": QWEN,
    "llama2": LLAMA,
    "mistral_v1": LLAMA,
    "mistral_v1_sys": LLAMA,
    "mistral_v7": LLAMA,
    "mistral_nemo": LLAMA,
    "zephyr": LLAMA,
    "llama3": LLAMA3,
    "llama3_2": LLAMA3,
    "phi3_mini": PHI3,
    "phi3_small": PHI3,
    "phi3_5": PHI3,
    "gemma": GEMMA,
    "gemma2": GEMMA,
    "gemma3": GEMMA,
    "deepseek_coder": (DEEPSEEK[0], "<|EOT|>"),
    "deepseek_v2": DEEPSEEK,
    "deepseek_r1": DEEPSEEK,
}

SYSTEM = {"role": "system", "content": "You are a helpful assistant"}
USER1 = {"role": "user", "content": "Hello"}
ASSISTANT1 = {"role": "assistant", "content": "Hi there"}
USER2 = {"role": "user", "content": "Who are you"}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Météo: get the weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
}
# llama.cpp's tests/test-chat-template.cpp conversation.
LONG = [
    SYSTEM, USER1, ASSISTANT1, USER2,
    {"role": "assistant", "content": "   I am an assistant   "},
    {"role": "user", "content": "Another question"},
]
CASES = {
    "sys": dict(messages=[SYSTEM, USER1, ASSISTANT1, USER2], add_generation_prompt=True),
    "nosys": dict(messages=[USER1, ASSISTANT1, USER2], add_generation_prompt=True),
    "nosys_nogen": dict(messages=[USER1, ASSISTANT1, USER2], add_generation_prompt=False),
    "long": dict(messages=LONG, add_generation_prompt=True),
    "tools": dict(messages=[USER1, ASSISTANT1, USER2], add_generation_prompt=True, tools=[TOOL]),
}


# Small templates exercising one feature each; rendered into snippets.golden as pairs of
# records "tpl" (the source) and "out" (the result) with SNIPPET_VARS as variables.
SNIPPET_VARS = {"d": {"a": 1, "b": [1, 2]}, "s": "Hello World", "n": 7,
                "messages": [SYSTEM, USER1, ASSISTANT1, USER2]}
SNIPPETS = [
    "  {% if true %}\n  x\n  {% endif %}\n  y {{ 1 }}\n   {# c #}\nz\n",
    "a\n  {%- if true %} b {% endif -%}  \n c {{- ' d ' -}} e\n{%+ if true %}f{% endif +%}\ng",
    "{% for m in [1,2,3] %}{% if loop.first %}{% set x = 1 %}{% endif %}[{{ x }}]{% endfor %}{{ x }}",
    "{% set x = 5 %}{% for m in [1,2] %}{% set x = m %}{{x}}{% endfor %}{{ x }}",
    "{% set y = 7 %}{% macro f(a, b=2) %}{{a}}-{{b}}-{{y}}-{{z}}{% endmacro %}{% set z = 9 %}"
    "{{ f(1) }}|{{ f(1, b=3) }}|{{ f(b=4, a=0) }}",
    "{{ none }}{{ None }}{{ true }}{{ True }}{{ 1.0 }}{{ 1e20 }}{{ 1/3 }}{{ 7//2 }}{{ -7 % 3 }}{{ 2**10 }}",
    "{{ 'a' ~ 1 ~ none ~ [1,'b'] ~ {'a':1} }}|{{ [1,'b', none, true, 1.5, \"it's\"] }}|{{ (1,) }}{{ (1, 2) }}",
    "{{ 'abc'[::-1] }}{{ [1,2,3][1:] }}{{ 'hello'[-3:] }}{{ [1,2,3,4,5][::2] }}{{ [1,2,3][5:] }}{{ 'héllo'[1] }}",
    "{{ {'a':1}|tojson }}{{ 'é\"\\n'|tojson }}{{ [1,{'b':none}, 2.5, true]|tojson(indent=2) }}{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}",
    "{{ 'x'.y }}|{{ d.get('a', 3) }}{{ d.get('z', 3) }}{{ d.get('z') }}|{{ 3 * 'ab' }}{{ 'ab' * 0 }}",
    "{{ 1 == 1.0 }}{{ true == 1 }}{{ 'a' < 'b' }}{{ [1,2] < [1,3] }}{{ 2 >= 2 }}{{ 'ab' in 'xabc' }}{{ 3 not in [1,2] }}{{ 'a' in d }}",
    "{%- set ns = namespace(a=1, b='x') %}{% set ns.a = ns.a + 1 %}{% set ns.c = [ns.b] %}{{ ns.a }}{{ ns.c }}",
    "{{ 'Hello World'.split() }}{{ 'a,b,,c'.split(',') }}{{ ' x '.strip() }}{{ 'xxhixx'.strip('x') }}"
    "{{ '  a b  '.lstrip() }}|{{ 'a b  \\n'.rstrip() }}|{{ 'a<b'.split('<', 1) }}",
    "{% for i in range(3) %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{% else %}E{% endfor %}",
    "{% for i in [] %}x{% else %}E{% endfor %}{% for i in [1,2,3,4] if i is even %}{{ i }}{{ loop.length }}{{ loop.last }}{% endfor %}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
    "{{ [3,1]|first }}{{ 'abc'|last }}{{ 'aBc def'|capitalize }}{{ 'x'|default('y') }}{{ u|default('y') }}{{ ''|default('y', true) }}{{ u|d('z') }}",
    "{{ messages|selectattr('role','equalto','user')|list|length }}{{ messages|map(attribute='role')|join(',') }}{{ messages|rejectattr('role', 'eq', 'user')|map(attribute='content')|list }}",
    "{{ d|items|list }}{{ d.keys()|list }}{{ d.values()|list }}{{ [1, 2, 2, 3]|unique|list }}{{ [3, 1, 2]|sort }}{{ [3, 1, 2]|sort(reverse=true) }}",
    "{{ 1 if false }}|{{ 'a' if 0 else 'b' }}|{{ 0.1 + 0.2 }}{{ 1e16 }}{{ 1e-5 }}{{ 123.0 }}{{ -0.0 }}{{ 1e15 }}{{ 2.5e-3 }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (1, 2) %}{{ t }}{% set x %}hello {{ a }}{% endset %}[{{ x }}]",
    "{{ 'a' is string }}{{ 1 is number }}{{ [] is iterable }}{{ {} is mapping }}{{ 'a' is iterable }}{{ none is none }}{{ 1 is integer }}"
    "{{ 1.0 is float }}{{ true is boolean }}{{ u is undefined }}{{ u is defined }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ 4 is divisibleby(3) }}{{ 'ab' is lower }}",
    "{{ {'a':1}['b'] is defined }}{{ [1,2][5] is defined }}{{ 'abc'.upper() }}{{ 'a-b'.replace('-', '+') }}{{ 'abcb'|replace('b','x') }}{{ 'x'|upper }}{{ 'they\\'re bill-s'|title }}",
    "{{ 'x' | trim('x') }}|{{ [1,2,3]|length }}{{ 'abc'|count }}{{ u|length }}|{{ true and 'x' }}{{ false or 'y' }}{{ none or 0 }}{{ not none }}",
    "{{ 'a\\nb' }}|{{ \"c\\'d\" }}|{{ '\\d' }}|{{ '\\x41\\u00e9\\t' }}|{{ 'a' 'b' }}",
    "{%- for m in [1] -%}\n  {{- m -}}\n{%- endfor -%}\n",
    "{{ u | string }}{{ none|string }}{{ 1.5|int }}{{ '12'|int }}{{ 'x'|int }}{{ 3|float }}{{ '2.5'|float }}{{ [1,2,3]|join }}{{ ['a','b']|join(', ') }}",
    "{% for a in [1,2,3,4] %}{% if a == 2 %}{% continue %}{% endif %}{{ a }}{% if a==3 %}{% break %}{% endif %}{% endfor %}",
    "{{ 10 // 3 }}{{ 10.0 // 3 }}{{ -7 // 2 }}{{ 7 % -3 }}{{ 7.5 % 2 }}{{ 2 ** -1 }}{{ -n }}{{ +n }}{{ n - 2 * 3 }}{{ (n - 2) * 3 }}{{ 'a' ~ (n + 1) }}",
    "{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined }}>{{ loop.nextitem.role if not loop.last else '-' }};{% endfor %}",
    "{{ messages[0]['content'] }}|{{ messages[-1].content }}|{{ messages[1:]|length }}|{{ messages[::-1][0].role }}|{{ messages|last|attr('role') }}",
    "{{ s.startswith('Hello') }}{{ s.endswith(('x', 'World')) }}{{ s.find('World') }}{{ s.count('l') }}{{ s.title() }}{{ s.lower() }}{{ '-'.join(['a', 'b']) }}",
    "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}{% if not n %}zero{% endif %}",
    "{{ [1, 2, 3]|sum }}{{ [1, 2, 3]|max }}{{ [1, 2, 3]|min }}{{ -3|abs }}{{ 2.567|round(2) }}{{ [1, 2]|reverse|list }}{{ 'ab'|reverse }}",
    "{{ 'line1\\nline2\\n\\nline4'|indent(2) }}|{{ 'a<b>&'|e }}|{{ {'x': d} }}",
    "{{ raise_exception('boom') }}",
    "{{ u.x }}",
    "{{ 'a' + 1 }}",
    "{{ 5 / 0 }}",
    "{{ [1,2].append(3) }}",
]


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime(2024, 7, 26, 12, 0, 0).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, bos, eos, case):
    try:
        template = env.from_string(source)
        return template.render(tools=case.get("tools"), documents=None, bos_token=bos,
                               eos_token=eos, messages=case["messages"],
                               add_generation_prompt=case["add_generation_prompt"])
    except Exception as e:  # pylint: disable=broad-except
        return "ERROR: %s" % e


def record(key, text):
    data = text.encode("utf-8")
    return b"@@ %s %d\n" % (key.encode(), len(data)) + data + b"\n"


def write_snippets(env):
    out = b""
    for source in SNIPPETS:
        try:
            result = env.from_string(source).render(**SNIPPET_VARS)
        except Exception as e:  # pylint: disable=broad-except
            result = "ERROR: %s" % e
        out += record("tpl", source) + record("out", result)
    with open(os.path.join(HERE, "snippets.golden"), "wb") as f:
        f.write(out)


def main():
    env = make_env()
    write_snippets(env)
    for name, (bos, eos) in sorted(TOKENS.items()):
        with open(os.path.join(HERE, name + ".jinja"), encoding="utf-8", newline="") as f:
            source = f.read()
        out = record("bos", bos) + record("eos", eos)
        for key, case in CASES.items():
            out += record(key, render(env, source, bos, eos, case))
        with open(os.path.join(HERE, name + ".golden"), "wb") as f:
            f.write(out)
        print(name, file=sys.stderr)


if __name__ == "__main__":
    main()
