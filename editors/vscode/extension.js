// Starts `mon lsp` for .mon files; everything else is the server's.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("mon").get("server.path") || "mon";
  const server = { command, args: ["lsp"] };
  client = new LanguageClient(
    "mon",
    "mon language server",
    { run: server, debug: server },
    {
      documentSelector: [{ scheme: "file", language: "mon" }, { scheme: "untitled", language: "mon" }],
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.mon") },
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
