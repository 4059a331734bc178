"""Print the README's configuration table from Settings (run after adding a setting)."""

from phone_agent.config import Settings, env_names, is_secret, setting_names

print("| setting | env | default | description |")
print("|---|---|---|---|")
for name in setting_names():
    field = Settings.model_fields[name]
    default = "(a short receptionist brief)" if name == "instructions" else field.default
    shown = "" if default is None else str(default).replace("|", "\\|")
    envs = " / ".join(f"`{e}`" for e in env_names(name))
    secret = " (secret)" if is_secret(name) else ""
    print(f"| `{name}` | {envs} | {('`' + shown + '`') if shown else '—'}{secret} | {field.description} |")
