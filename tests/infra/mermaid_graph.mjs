// Parse every ```mermaid block of a Markdown file with Mermaid's own parser and print what each draws.
//
// Usage: node tests/infra/mermaid_graph.mjs README.md  ->  one JSON array on stdout, one entry per block:
//   {line, type, nodes: [{id, label}], groups: [{id, label, members}], edges: [{from, to, label}]}
// A block Mermaid cannot parse ends the run with exit 1 and "FILE:LINE: message" on stderr.
//
// Mermaid needs a DOM even to parse (DOMPurify sanitises labels), so jsdom provides one; no browser.
// The graph comes from the parsed diagram's database (mermaid.mermaidAPI.getDiagramFromText(), then
// db.getVertices/getSubGraphs/getEdges for flowcharts, db.getActors/getBoxes/getMessages for sequence
// diagrams; mermaid-js/mermaid, packages/mermaid/src/diagrams/{flowchart/flowDb.ts,sequence/sequenceDb.ts}).
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.Option = dom.window.Option; // the sequence parser reads a box's colour through `new Option()`
console.log = console.error; // Mermaid's own chatter must not mix with the JSON on stdout
console.info = console.error;
console.warn = console.error;

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, logLevel: "fatal", securityLevel: "strict" });

function blocks(markdown) {
  const found = [];
  let current = null;
  markdown.split("\n").forEach((text, index) => {
    if (current === null && text.trim() === "```mermaid") {
      current = { line: index + 2, lines: [] };
    } else if (current !== null && text.trim() === "```") {
      found.push({ line: current.line, text: current.lines.join("\n") + "\n" });
      current = null;
    } else if (current !== null) {
      current.lines.push(text);
    }
  });
  if (current !== null) throw new Error(`line ${current.line - 1}: unclosed mermaid block`);
  return found;
}

function flowchart(db) {
  return {
    nodes: [...db.getVertices().values()].map((v) => ({ id: v.id, label: v.text ?? v.id })),
    groups: db.getSubGraphs().map((g) => ({ id: g.id, label: g.title, members: g.nodes })),
    edges: db.getEdges().map((e) => ({ from: e.start, to: e.end, label: e.text ?? "" })),
  };
}

function sequence(db) {
  return {
    nodes: [...db.getActors().values()].map((a) => ({ id: a.name, label: a.description })),
    groups: db.getBoxes().map((b) => ({ id: b.name ?? "", label: b.name ?? "", members: b.actorKeys })),
    edges: db
      .getMessages()
      .filter((m) => m.from !== undefined && m.to !== undefined)
      .map((m) => ({ from: m.from, to: m.to, label: m.message ?? "" })),
  };
}

const path = process.argv[2];
const out = [];
for (const block of blocks(readFileSync(path, "utf8"))) {
  try {
    await mermaid.parse(block.text); // the public API: throws on any syntax error
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(block.text);
    const graph = diagram.type === "sequence" ? sequence(diagram.db) : flowchart(diagram.db);
    out.push({ line: block.line, type: diagram.type, ...graph });
  } catch (error) {
    process.stderr.write(`${path}:${block.line}: ${error.message ?? error}\n`);
    process.exit(1);
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
