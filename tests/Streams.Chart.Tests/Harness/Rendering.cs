using System.Text.Json.Nodes;

namespace Streams.Chart.Tests.Harness;

/// <summary>What one rendering of the chart produced: its objects (with the template each came from), and the files.</summary>
internal sealed class Rendering
{
    private Rendering(string directory, IReadOnlyList<(string Source, JsonObject Object)> documents, string notes)
    {
        Directory = directory;
        Documents = documents;
        Notes = notes;
    }

    public string Directory { get; }

    public string ManifestsYaml => Path.Combine(Directory, "manifests.yaml");

    public string ManifestsJson => Path.Combine(Directory, "manifests.json");

    /// <summary>What helm install would print after installing (templates/NOTES.txt).</summary>
    public string Notes { get; }

    public IReadOnlyList<(string Source, JsonObject Object)> Documents { get; }

    public IEnumerable<JsonObject> Objects => Documents.Select(d => d.Object);

    public static Rendering Load(string directory)
    {
        var documents = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "manifests.json")))!.AsArray()
            .Select(d => ((string)d!["source"]!, d["object"]!.AsObject()))
            .ToList();
        return new Rendering(directory, documents, File.ReadAllText(Path.Combine(directory, "NOTES.txt")));
    }

    /// <summary>How many objects of each kind, e.g. "Service" = 5.</summary>
    public IReadOnlyDictionary<string, int> Kinds =>
        Objects.GroupBy(o => (string)o["kind"]!).ToDictionary(g => g.Key, g => g.Count());

    public IEnumerable<JsonObject> OfKind(string kind) => Objects.Where(o => (string)o["kind"]! == kind);

    public JsonObject Get(string kind, string name) =>
        OfKind(kind).SingleOrDefault(o => (string)o["metadata"]!["name"]! == name)
        ?? throw new InvalidOperationException($"No {kind} {name}; there are: {string.Join(", ", Objects.Select(o => $"{o["kind"]} {o["metadata"]!["name"]}"))}");

    /// <summary>The one container of a workload's pod template.</summary>
    public static JsonObject Container(JsonObject workload) =>
        workload["spec"]!["template"]!["spec"]!["containers"]!.AsArray().Single()!.AsObject();

    public static JsonObject PodSpec(JsonObject workload) => workload["spec"]!["template"]!["spec"]!.AsObject();

    /// <summary>A container's plain environment variables (those with a value).</summary>
    public static IReadOnlyDictionary<string, string> Env(JsonObject container) =>
        (container["env"]?.AsArray() ?? [])
            .Where(e => e!["value"] is not null)
            .ToDictionary(e => (string)e!["name"]!, e => (string)e!["value"]!);

    /// <summary>A container's environment variable that comes from a Secret: (secret, key).</summary>
    public static (string Secret, string Key)? SecretEnv(JsonObject container, string name) =>
        (container["env"]?.AsArray() ?? [])
            .Where(e => (string)e!["name"]! == name && e["valueFrom"]?["secretKeyRef"] is not null)
            .Select(e => ((string)e!["valueFrom"]!["secretKeyRef"]!["name"]!, (string)e["valueFrom"]!["secretKeyRef"]!["key"]!))
            .Cast<(string, string)?>()
            .SingleOrDefault();

    public static IReadOnlyDictionary<string, string> Labels(JsonNode? labels) =>
        labels?.AsObject().ToDictionary(p => p.Key, p => (string)p.Value!) ?? [];
}
