package org.horqkeras.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.Path
import android.graphics.Rect
import android.util.AttributeSet
import android.view.MotionEvent
import android.view.View
import kotlin.math.max
import kotlin.math.min

/** A square canvas: draw a digit white on black with a finger, or show an image. */
class DrawingView(context: Context, attrs: AttributeSet?) : View(context, attrs) {

    /** Called when the user starts a stroke (the view then shows a drawing, not a sample). */
    var onStroke: (() -> Unit)? = null

    private val strokePaint = Paint().apply {
        color = Color.WHITE
        style = Paint.Style.STROKE
        strokeCap = Paint.Cap.ROUND
        strokeJoin = Paint.Join.ROUND
        isAntiAlias = true
    }
    private val imagePaint = Paint()
    private val path = Path()
    private var bitmap: Bitmap? = null
    private var canvas: Canvas? = null

    override fun onMeasure(widthMeasureSpec: Int, heightMeasureSpec: Int) {
        val size = MeasureSpec.getSize(widthMeasureSpec)
        setMeasuredDimension(size, size)
    }

    override fun onSizeChanged(w: Int, h: Int, oldw: Int, oldh: Int) {
        if (w <= 0 || h <= 0) return
        bitmap = Bitmap.createBitmap(w, h, Bitmap.Config.ARGB_8888).also { canvas = Canvas(it) }
        strokePaint.strokeWidth = w / 12f  // about MNIST's stroke width once scaled to 20 px
        clear()
    }

    override fun onDraw(canvas: Canvas) {
        bitmap?.let { canvas.drawBitmap(it, 0f, 0f, imagePaint) }
        canvas.drawPath(path, strokePaint)
    }

    override fun onTouchEvent(event: MotionEvent): Boolean {
        when (event.actionMasked) {
            MotionEvent.ACTION_DOWN -> {
                onStroke?.invoke()
                path.moveTo(event.x, event.y)
            }
            MotionEvent.ACTION_MOVE -> path.lineTo(event.x, event.y)
            MotionEvent.ACTION_UP -> {
                path.lineTo(event.x, event.y)
                canvas?.drawPath(path, strokePaint)
                path.reset()
                performClick()
            }
            else -> return false
        }
        invalidate()
        return true
    }

    override fun performClick(): Boolean = super.performClick()

    fun clear() {
        path.reset()
        canvas?.drawColor(Color.BLACK)
        invalidate()
    }

    /** Show [pixels] (uint8 gray, row-major, [height] x [width]) scaled to the whole view. */
    fun show(pixels: ByteArray, width: Int, height: Int) {
        val colors = IntArray(width * height) { val v = pixels[it].toInt() and 0xFF; Color.rgb(v, v, v) }
        val image = Bitmap.createBitmap(colors, width, height, Bitmap.Config.ARGB_8888)
        path.reset()
        canvas?.let { it.drawColor(Color.BLACK); it.drawBitmap(image, null, Rect(0, 0, it.width, it.height), imagePaint) }
        invalidate()
    }

    /**
     * The drawing as an MNIST-style image, uint8 gray, row-major, [size] x [size]: the
     * drawing's bounding box, made square, is averaged down to [box] x [box] pixels and
     * centred (MNIST centres by centre of mass; the bounding box is close enough).
     */
    fun toPixels(size: Int = 28, box: Int = 20): ByteArray {
        val pixels = ByteArray(size * size)
        val source = bitmap ?: return pixels
        val w = source.width
        val h = source.height
        val argb = IntArray(w * h)
        source.getPixels(argb, 0, w, 0, 0, w, h)
        var left = w
        var top = h
        var right = -1
        var bottom = -1
        for (y in 0 until h) for (x in 0 until w) {
            if (Color.red(argb[y * w + x]) > 0) {
                left = min(left, x); right = max(right, x); top = min(top, y); bottom = max(bottom, y)
            }
        }
        if (right < 0) return pixels  // nothing drawn
        val side = max(right - left, bottom - top) + 1
        val x0 = left - (side - (right - left + 1)) / 2
        val y0 = top - (side - (bottom - top + 1)) / 2
        val offset = (size - box) / 2
        for (i in 0 until box) for (j in 0 until box) {  // area average of each output pixel
            val ys = y0 + i * side / box
            val ye = max(ys + 1, y0 + (i + 1) * side / box)
            val xs = x0 + j * side / box
            val xe = max(xs + 1, x0 + (j + 1) * side / box)
            var sum = 0L
            for (y in ys until ye) for (x in xs until xe) {
                if (y in 0 until h && x in 0 until w) sum += Color.red(argb[y * w + x])
            }
            pixels[(offset + i) * size + offset + j] = (sum / ((ye - ys) * (xe - xs))).toInt().toByte()
        }
        return pixels
    }
}
