from exporter.cli import console

console()
