package org.horqkeras.demo

import android.content.Context
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The converted model (assets/model.tflite) on LCE's TFLite runtime: the lce-lite AAR is
 * TFLite's Java API whose native library also registers LCE's operators (LceBconv2d,
 * LceQuantize, ...), so a plain [Interpreter] runs binary models.
 *
 * Not thread-safe: call [classify] and [close] from one thread.
 */
class DigitClassifier(context: Context, threads: Int) : AutoCloseable {

    /** One prediction: class, its output score, all scores, and the time of the inference. */
    class Result(val label: Int, val score: Float, val scores: FloatArray, val latencyMs: Double)

    private val interpreter = Interpreter(
        loadModel(context, MODEL_ASSET),
        Interpreter.Options().setNumThreads(threads),
    )
    val height: Int
    val width: Int
    private val input: ByteBuffer
    private val output: Array<FloatArray>

    init {
        val tensor = interpreter.getInputTensor(0)
        val shape = tensor.shape()
        require(tensor.dataType() == DataType.FLOAT32 && shape.size == 4 && shape[0] == 1 && shape[3] == 1) {
            "model input must be float32 [1, H, W, 1]; it is ${tensor.dataType()} ${shape.contentToString()}"
        }
        height = shape[1]
        width = shape[2]
        input = ByteBuffer.allocateDirect(4 * height * width).order(ByteOrder.nativeOrder())
        output = arrayOf(FloatArray(interpreter.getOutputTensor(0).shape().last()))
    }

    /**
     * Classify one image of uint8 pixels (row-major, [height] x [width], 0 = background),
     * scaled to pixel / 255 as in training (horq_keras.datasets.scale_images).
     */
    fun classify(pixels: ByteArray): Result {
        require(pixels.size == height * width) { "expected ${height * width} pixels, got ${pixels.size}" }
        input.rewind()
        for (pixel in pixels) input.putFloat((pixel.toInt() and 0xFF) / 255f)
        input.rewind()
        val start = System.nanoTime()
        interpreter.run(input, output)
        val latencyMs = (System.nanoTime() - start) / 1e6
        val scores = output[0].copyOf()
        val label = scores.indices.maxBy { scores[it] }
        return Result(label, scores[label], scores, latencyMs)
    }

    override fun close() = interpreter.close()

    companion object {
        const val MODEL_ASSET = "model.tflite"

        /** Memory-map an asset (stored uncompressed: see noCompress in app/build.gradle.kts). */
        private fun loadModel(context: Context, name: String): MappedByteBuffer =
            context.assets.openFd(name).use { descriptor ->
                FileInputStream(descriptor.fileDescriptor).channel.use { channel ->
                    channel.map(FileChannel.MapMode.READ_ONLY, descriptor.startOffset, descriptor.declaredLength)
                }
            }
    }
}
