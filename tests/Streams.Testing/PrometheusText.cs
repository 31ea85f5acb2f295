using System.Globalization;

namespace Streams.Testing;

/// <summary>
/// Reads samples out of the Prometheus text format that /metrics serves: <c>name{label="value",...} number [timestamp]</c>.
/// Labels a test does not name (such as OpenTelemetry's otel_scope_name) are ignored.
/// </summary>
public static class PrometheusText
{
    /// <summary>Scrapes /metrics on a server's metrics port.</summary>
    public static async Task<string> ScrapeAsync(int metricsPort, CancellationToken cancellationToken = default)
    {
        using var http = new HttpClient();
        return await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort.ToString(CultureInfo.InvariantCulture)}/metrics"), cancellationToken);
    }

    /// <summary>
    /// The sum of the samples named <paramref name="name"/> that carry every label in <paramref name="labels"/> (like
    /// PromQL's <c>sum(name{labels})</c>), or null when there is none.
    /// </summary>
    public static double? Value(string text, string name, params (string Name, string Value)[] labels)
    {
        double? sum = null;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || !TryParse(line, out var sampleName, out var sampleLabels, out var value) || sampleName != name)
            {
                continue;
            }

            if (labels.All(l => sampleLabels.TryGetValue(l.Name, out var v) && v == l.Value))
            {
                sum = (sum ?? 0) + value;
            }
        }

        return sum;
    }

    private static bool TryParse(string line, out string name, out Dictionary<string, string> labels, out double value)
    {
        labels = new Dictionary<string, string>(StringComparer.Ordinal);
        value = 0;
        var i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ')
        {
            i++;
        }

        name = line[..i];
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (i < line.Length && line[i] != '}')
            {
                var equals = line.IndexOf('=', i);
                if (equals < 0 || equals + 1 >= line.Length || line[equals + 1] != '"')
                {
                    return false;
                }

                var key = line[i..equals];
                var text = new System.Text.StringBuilder();
                i = equals + 2;
                for (; i < line.Length && line[i] != '"'; i++)
                {
                    if (line[i] == '\\' && i + 1 < line.Length)
                    {
                        i++;
                        text.Append(line[i] == 'n' ? '\n' : line[i]);
                    }
                    else
                    {
                        text.Append(line[i]);
                    }
                }

                labels[key] = text.ToString();
                i++; // the closing quote
                if (i < line.Length && line[i] == ',')
                {
                    i++;
                }
            }

            i++; // the closing brace
        }

        var number = line[Math.Min(i, line.Length)..].Trim().Split(' ')[0];
        return name.Length > 0 && double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }
}
