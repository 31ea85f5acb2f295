using System.Text.Json.Nodes;

namespace Streams.Chart.Tests.Harness;

/// <summary>What tests/chart/validate.mjs said: how many objects of which kinds it checked, and every error.</summary>
internal sealed record ValidationReport(int Objects, IReadOnlyDictionary<string, int> Kinds, IReadOnlyList<string> Errors, int Exit)
{
    public static ValidationReport Parse(string output, int exit)
    {
        var line = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault()
            ?? throw new InvalidOperationException($"The schema validator printed nothing (exit {exit}).");
        var report = JsonNode.Parse(line)!;
        return new ValidationReport(
            (int)report["objects"]!,
            report["kinds"]!.AsObject().ToDictionary(p => p.Key, p => (int)p.Value!),
            report["errors"]!.AsArray().Select(e => (string)e!).ToList(),
            exit);
    }
}
