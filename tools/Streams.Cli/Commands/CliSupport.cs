using System.CommandLine;
using System.Globalization;
using Streams.Client;
using Grpc.Core;
using Streams.Common.Naming;

namespace Streams.Cli.Commands;

/// <summary>A user error: printed as one line, exit code 2.</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>What every command shares: the controller option, error reporting, argument parsing.</summary>
internal static class CliSupport
{
    public static readonly Option<string> Controller = new("--controller")
    {
        Description = "Controller address, or several separated by commas (default: $STREAMS_CONTROLLER, else " + StreamsClientOptions.DefaultControllerUri + ").",
        Recursive = true,
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("STREAMS_CONTROLLER") ?? StreamsClientOptions.DefaultControllerUri,
    };

    public static readonly Option<DataTransport> Transport = new("--transport")
    {
        Description = "Data carrier for writes and reads: Raw (default) or Grpc.",
        Recursive = true,
        DefaultValueFactory = _ => DataTransport.Raw,
    };

    public static StreamsClient CreateClient(ParseResult parse) => StreamsClient.Create(new StreamsClientOptions
    {
        ControllerUri = parse.GetValue(Controller)!,
        Transport = parse.GetValue(Transport),
    });

    /// <summary>Runs a command body, turning failures into one line on stderr and an exit code.</summary>
    public static async Task<int> RunAsync(ParseResult parse, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (CliException e)
        {
            return Fail(e.Message, 2);
        }
        catch (StreamsException e) when (e.StatusCode == StatusCode.Unavailable)
        {
            return Fail($"cannot reach {parse.GetValue(Controller)}: {e.Message} (is `streams standalone` running?)", 1);
        }
        catch (StreamsException e)
        {
            return Fail($"{e.Message} ({e.StatusCode})", 1);
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
        catch (ArgumentException e)
        {
            return Fail(e.Message, 2);
        }
        catch (InvalidOperationException e)
        {
            return Fail(e.Message, 1);
        }
        catch (IOException e)
        {
            return Fail(e.Message, 1);
        }
    }

    public static int Fail(string message, int code)
    {
        Console.Error.WriteLine("error: " + message);
        return code;
    }

    /// <summary>A stream cut as `stream cut` prints it and `--at`, `--from` and `--to` take it: segment-id=offset, by segment id, comma-separated.</summary>
    public static string FormatCut(StreamCut cut) =>
        string.Join(',', cut.Positions.OrderBy(p => p.Key).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key}={p.Value}")));

    /// <summary>The cut of <paramref name="scope"/>/<paramref name="stream"/> that <see cref="FormatCut"/> printed as <paramref name="text"/>.</summary>
    public static StreamCut ParseCut(string scope, string stream, string text)
    {
        var positions = new Dictionary<long, long>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var pair = part.Split('=');
            if (pair.Length != 2 || !long.TryParse(pair[0], CultureInfo.InvariantCulture, out var id) || !long.TryParse(pair[1], CultureInfo.InvariantCulture, out var offset))
            {
                throw new ArgumentException($"'{part}' is not segment-id=offset (as `stream cut` prints).");
            }

            positions[id] = offset;
        }

        return new StreamCut(scope, stream, positions);
    }

    /// <summary>Splits "scope/stream", checking both names.</summary>
    public static (string Scope, string Stream) ParseStream(string value)
    {
        var parts = value.Split('/');
        if (parts.Length != 2)
        {
            throw new CliException($"'{value}' is not a stream name: use scope/stream.");
        }

        if (NameValidator.Validate(parts[0], "scope") is { } scopeError)
        {
            throw new CliException(scopeError);
        }

        if (NameValidator.Validate(parts[1], "stream") is { } streamError)
        {
            throw new CliException(streamError);
        }

        return (parts[0], parts[1]);
    }
}
