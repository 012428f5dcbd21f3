// Draws every ```mermaid block (rendered by pymdownx.superfences as <pre class="mermaid">).
mermaid.initialize({ startOnLoad: true, securityLevel: "strict" });
