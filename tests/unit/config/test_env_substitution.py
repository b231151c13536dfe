"""An unset ``%(NODEPOOL_X)`` that breaks the YAML names the variable.

Substitution keeps upstream's semantics (only set ``NODEPOOL_*`` variables
are replaced, everything else stays verbatim), so a verbatim placeholder
inside a quoted or longer scalar is still accepted as text; only where the
verbatim text is not valid YAML -- a plain scalar starting with ``%`` --
the one error line says which variable is unset instead of PyYAML's
"found character '%' that cannot start any token".
"""

from __future__ import annotations

import pytest

from nodepool.config import ConfigError, load_config, validate_config

STATIC = """\
labels:
  - name: small
providers:
  - name: static-1
    driver: static
    pools:
      - name: main
        nodes:
          - name: %(NODEPOOL_STATIC_HOST)s
            labels: [small]
            username: "%(NODEPOOL_USER)"
"""


def unset(path, line, column, name):
    return (f"{path}:{line}:{column}: environment variable {name} is not "
            f"set, so %({name}) is left as written, which is not valid "
            f"YAML here")


def test_unset_variable_at_start_of_plain_scalar_is_named(write_yaml):
    path = write_yaml(STATIC)
    result = validate_config(path, env={"NODEPOOL_USER": "zuul"})
    assert result.errors == [unset(path, 9, 19, "NODEPOOL_STATIC_HOST")]
    assert result.config is None
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.errors == [unset(path, 9, 19, "NODEPOOL_STATIC_HOST")]


def test_set_variable_loads_and_quoted_unset_stays_verbatim(write_yaml):
    # Upstream semantics: the quoted placeholder is text, not an error.
    config = load_config(write_yaml(STATIC),
                         env={"NODEPOOL_STATIC_HOST": "host1"})
    node = config.providers["static-1"].pools["main"].nodes[0]
    assert node.name == "host1s"      # "%(NAME)" is replaced, "s" stays
    assert node.username == "%(NODEPOOL_USER)"


@pytest.mark.parametrize("text,line,column", [
    ("%(NODEPOOL_TOP)\nlabels: []\n", 1, 1),          # a directive start
    ("labels: [%(NODEPOOL_TOP)]\n", 1, 10),            # flow sequence
    ("labels:\n  - {name: %(NODEPOOL_TOP)}\n", 2, 12),  # flow mapping
    ("labels:\n  - %(NODEPOOL_TOP)\n", 2, 5),          # block sequence
])
def test_every_yaml_context_names_the_variable(write_yaml, text, line,
                                               column):
    path = write_yaml(text)
    assert validate_config(path, env={}).errors == [
        unset(path, line, column, "NODEPOOL_TOP")]


def test_only_nodepool_variables_are_substituted(write_yaml):
    # A non-NODEPOOL_ placeholder is never substituted, even when set: the
    # plain YAML error stays (it is not an "unset variable").
    path = write_yaml("labels:\n  - name: %(HOME)\n")
    errors = validate_config(path, env={"HOME": "/root"}).errors
    assert len(errors) == 1
    assert errors[0].startswith(f"{path}:2:11: YAML syntax error: ")
    assert "found character '%'" in errors[0]


def test_unrelated_syntax_error_is_not_blamed_on_a_placeholder(write_yaml):
    path = write_yaml('labels:\n  - name: "%(NODEPOOL_A)"\n   bad: [\n')
    errors = validate_config(path, env={}).errors
    assert len(errors) == 1
    assert errors[0].startswith(f"{path}:3:")
    assert "YAML syntax error" in errors[0]
    assert "NODEPOOL_A" not in errors[0]


def test_secure_file_names_the_variable_too(write_yaml):
    main = write_yaml("labels: []\n")
    secure = write_yaml("zookeeper-tls:\n  cert: %(NODEPOOL_CERT)\n"
                        "  key: /k\n  ca: /a\n", name="secure.yaml")
    assert validate_config(main, secure, env={}).errors == [
        unset(secure, 2, 9, "NODEPOOL_CERT")]
    config = load_config(main, secure, env={"NODEPOOL_CERT": "/c"})
    assert config.zookeeper_tls.cert == "/c"


def test_defaults_to_the_process_environment(write_yaml, monkeypatch):
    monkeypatch.delenv("NODEPOOL_STATIC_HOST", raising=False)
    path = write_yaml(STATIC)
    assert validate_config(path).errors == [
        unset(path, 9, 19, "NODEPOOL_STATIC_HOST")]
    monkeypatch.setenv("NODEPOOL_STATIC_HOST", "h")
    assert validate_config(path).errors == []
