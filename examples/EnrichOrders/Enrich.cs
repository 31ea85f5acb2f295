using Streams.Client.Reading;
using Streams.Client.Serialization;
using Streams.Functions;

namespace EnrichOrders;

/// <summary>
/// Reads "order-id,customer,amount" events and writes "order-id,customer,amount,size" to the output stream, routed by
/// the same key. The output is a pure function of the input, so a batch handled again writes the same events, which
/// the store keeps once.
/// </summary>
public sealed class Enrich(IConfiguration configuration) : IStreamFunction<string>
{
    private readonly string _output = configuration["Enrich:Output"] ?? "shop/enriched";

    public async Task HandleAsync(FunctionBatch<string> batch, CancellationToken cancellationToken)
    {
        var output = batch.Output(_output, Serializers.Utf8);
        foreach (var e in batch.Events)
        {
            await output.WriteAsync(e, e.RoutingKey, Enriched(e), cancellationToken);
        }
    }

    private static string Enriched(EventRead<string> e)
    {
        var amount = e.Value.Split(',') is [_, _, var text] && decimal.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var a) ? a : 0;
        return $"{e.Value},{(amount >= 100 ? "large" : "small")}";
    }
}
