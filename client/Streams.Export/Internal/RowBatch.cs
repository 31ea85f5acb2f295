using System.Text.Json;
using Streams.Client.Reading;

namespace Streams.Export.Internal;

/// <summary>
/// The rows of one record batch or row group as columns: segment, offset, routing key, payload, and the raw values
/// of the JSON fields. Reused from batch to batch.
/// </summary>
internal sealed class RowBatch
{
    private readonly string[][] _steps;

    public RowBatch(IReadOnlyList<JsonField> fields)
    {
        _steps = [.. fields.Select(f => f.Steps)];
        Fields = [.. fields.Select(_ => new List<JsonValue>())];
    }

    public List<string> Segments { get; } = [];

    public List<long> Offsets { get; } = [];

    public List<string?> Keys { get; } = [];

    public List<byte[]> Payloads { get; } = [];

    /// <summary>Per JSON field, its value in each row.</summary>
    public List<JsonValue>[] Fields { get; }

    public int Count => Offsets.Count;

    public long PayloadBytes { get; private set; }

    public void Add(in EventRead<byte[]> e)
    {
        Segments.Add(e.Position.Segment);
        Offsets.Add(e.Position.Offset);
        Keys.Add(e.RoutingKey);
        Payloads.Add(e.Value);
        PayloadBytes += e.Value.Length;
        if (_steps.Length > 0)
        {
            AddFields(e.Value);
        }
    }

    public void Clear()
    {
        Segments.Clear();
        Offsets.Clear();
        Keys.Clear();
        Payloads.Clear();
        PayloadBytes = 0;
        foreach (var field in Fields)
        {
            field.Clear();
        }
    }

    private void AddFields(byte[] payload)
    {
        JsonDocument? document = null;
        try
        {
            document = JsonDocument.Parse(payload);
        }
        catch (JsonException)
        {
            // Not JSON: every field of this row is null.
        }

        using (document)
        {
            for (var i = 0; i < _steps.Length; i++)
            {
                Fields[i].Add(document is not null && TryFind(document.RootElement, _steps[i], out var found) ? JsonValue.From(found) : JsonValue.Missing);
            }
        }
    }

    private static bool TryFind(JsonElement element, string[] steps, out JsonElement found)
    {
        found = element;
        foreach (var step in steps)
        {
            if (found.ValueKind != JsonValueKind.Object || !found.TryGetProperty(step, out found))
            {
                return false;
            }
        }

        return true;
    }
}
