package org.horqkeras.demo

import android.os.Bundle
import android.widget.Button
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Draw a digit (or step through the bundled MNIST samples), classify it with the converted
 * model on LCE's runtime, and show the prediction, the latency of that inference, and the
 * model's share of binary operators. Inference runs on one worker thread.
 */
class MainActivity : AppCompatActivity() {

    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var classifier: DigitClassifier? = null
    private var samples: DigitSamples? = null
    private var sample = -1  // index of the sample on screen, -1 for a drawing
    private lateinit var drawing: DrawingView
    private lateinit var result: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        drawing = findViewById(R.id.drawing)
        result = findViewById(R.id.result)
        val info = findViewById<TextView>(R.id.model_info)
        try {
            classifier = DigitClassifier(this, THREADS)
            samples = DigitSamples(this)
            info.text = ModelInfo.load(this).describe() + "\n$THREADS thread(s), LCE runtime"
        } catch (error: Exception) {  // a missing asset (IOException) or an unusable model
            info.text = getString(R.string.missing_assets) + "\n" + error.message
        }
        drawing.onStroke = { sample = -1 }
        findViewById<Button>(R.id.classify).setOnClickListener { classifyShown() }
        findViewById<Button>(R.id.clear).setOnClickListener {
            sample = -1
            drawing.clear()
            result.setText(R.string.draw_hint)
        }
        findViewById<Button>(R.id.next_sample).setOnClickListener { showNextSample() }
        findViewById<Button>(R.id.benchmark).setOnClickListener { timeRuns(BENCHMARK_RUNS) }
    }

    override fun onDestroy() {
        val model = classifier
        worker.execute { model?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    /** The pixels on screen: the sample itself, or the drawing in MNIST form. */
    private fun shownPixels(model: DigitClassifier): ByteArray =
        samples?.takeIf { sample >= 0 }?.image(sample) ?: drawing.toPixels(model.height)

    private fun showNextSample() {
        val digits = samples ?: return
        sample = (sample + 1) % digits.count
        drawing.show(digits.image(sample), digits.width, digits.height)
        classifyShown()
    }

    private fun classifyShown() {
        val model = classifier ?: return
        val pixels = shownPixels(model)
        val shown = sample
        worker.execute {
            val prediction = model.classify(pixels)
            runOnUiThread { result.text = describe(prediction, shown) }
        }
    }

    private fun describe(prediction: DigitClassifier.Result, shown: Int): String {
        var text = String.format(
            Locale.US, "Prediction: %d (score %.3f)\nInference: %.3f ms",
            prediction.label, prediction.score, prediction.latencyMs,
        )
        val digits = samples
        if (shown >= 0 && digits != null) {
            val host = digits.hostPredictions[shown]
            text += "\nSample ${shown + 1}/${digits.count}: label ${digits.labels[shown]}, " +
                "host predicted $host " + if (host == prediction.label) "(same)" else "(DIFFERENT)"
        }
        return text
    }

    /** Time [runs] inferences of what is on screen; show min / median / max. */
    private fun timeRuns(runs: Int) {
        val model = classifier ?: return
        val pixels = shownPixels(model)
        result.text = getString(R.string.benchmark) + "..."
        worker.execute {
            val times = DoubleArray(runs) { model.classify(pixels).latencyMs }.sorted()
            val text = String.format(
                Locale.US, "%d runs: min %.3f ms, median %.3f ms, max %.3f ms",
                runs, times.first(), times[runs / 2], times.last(),
            )
            runOnUiThread { result.text = text }
        }
    }

    companion object {
        const val THREADS = 1
        const val BENCHMARK_RUNS = 100
    }
}
