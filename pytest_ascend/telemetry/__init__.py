"""Each card's power, temperature, clocks, utilisation, memory, ECC and health, read while the
suite runs and joined to each result: a slowdown after a CANN upgrade is then told apart from
a hot, throttled or failing card. Platforms read their own cards (`Platform.telemetry`); this
package samples, summarises a timed region and judges health before against after."""
